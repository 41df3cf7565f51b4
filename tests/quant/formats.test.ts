// One conformance runner over every registered storage format (lib/quant/formats/registry.ts):
// a format added to FORMATS is tested here with no new test code. For each format, on random
// weights whose sizes are not multiples of the blocks:
// - pack → CPU decoder equals the container's `dequantize()` (any window of elements);
// - the spec agrees with itself and with the generic entry points (bindings, packWeight,
//   makeDecoder, bits per weight, code table);
// - on both backends the WGSL decoders (de-quantize kernel; `wval` / `wload8` / `wload4` through
//   the matrix-vector and tiled products) equal the CPU twin.
import assert from "node:assert/strict";
import { quant, Rng, Tensor } from "../../lib/mod.ts";
import { assertClose, bothBackends, randData } from "../harness.ts";
import { dequantSlack } from "./qmatmul_util.ts";

const { FORMATS, dequantizeOnDevice, qmatmul, toDevice } = quant;

// Options every format gets (formats without blocks ignore them): a block size that is not a
// power of two, and double quantization with small nested blocks so several scales are in play.
const OPTIONS: quant.QuantizeOptions[] = [
  { blockSize: 40 },
  { blockSize: 32, doubleQuant: true, dqBlockSize: 3 },
];

// [N, K]: ragged last blocks (7·37 = 259), K not a multiple of 8 (scalar `wval` loads) and of 4,
// K a multiple of 8 (`wload8` / `wload4`), single elements.
const SHAPES: [number, number][] = [[1, 1], [7, 37], [16, 64], [5, 40], [3, 13]];

const NAMES = Object.keys(FORMATS) as quant.QuantFormat[];

function randomWeights(rng: Rng, n: number): Float32Array {
  const w = Float32Array.from(randData(rng, n, 0.5));
  w.fill(0, 0, Math.min(n, 8)); // exact zeros, a zero block when the block is small
  return w;
}

function decodeAll(spec: quant.QuantFormatSpec, p: quant.PackedWeight): Float32Array {
  const out = new Float32Array(p.layout.N * p.layout.K);
  spec.decoder(p)(0, out.length, out);
  return out;
}

// How far the CPU decoder may be from `dequantize()`: nothing, except where the decoder rounds
// at the kernel's f32 steps and `dequantize()` once (int8: f32(f32(q·a) / 127) against
// f32(q·a / 127), one ulp).
function cpuSlack(q: quant.QuantizedWeight, want: Float32Array): Float64Array {
  const d = new Float64Array(want.length);
  if (q instanceof quant.Int8Weight) {
    for (let i = 0; i < d.length; i++) d[i] = 2 ** -23 * Math.abs(want[i]);
  }
  return d;
}

Deno.test("formats: the registry's names, specs and --quant choices agree", () => {
  for (const name of NAMES) assert.equal(FORMATS[name].name, name);
  for (const q of quant.BASE_QUANTS) assert.ok(q === "none" || q in FORMATS, q);
  assert.equal(quant.formatSpec("nf3"), undefined);
  assert.equal(quant.formatSpec("toString"), undefined);
});

for (const name of NAMES) {
  const spec = FORMATS[name];

  Deno.test(`formats: ${name}: pack → CPU decoder equals dequantize()`, () => {
    const rng = new Rng(1900 + NAMES.indexOf(name));
    for (const opts of OPTIONS) {
      for (const [N, K] of SHAPES) {
        const what = `${name} ${JSON.stringify(opts)} [${N},${K}]`;
        const q = spec.quantize(randomWeights(rng, N * K), [N, K], opts);
        assert.equal(q.format, name, what);
        const p = spec.pack(q);
        assert.deepEqual([p.layout.format, p.layout.N, p.layout.K], [name, N, K], what);
        const held = Object.values(p.arrays).filter((a) => a !== null).length;
        assert.equal(spec.bindings(p.layout), held, `${what}: bindings`);
        // The generic entry points go through the registry to the same spec.
        assert.deepEqual(quant.packWeight(q), p, `${what}: packWeight`);
        const all = decodeAll(spec, p);
        const want = q.dequantize();
        assertClose(all, want, cpuSlack(q, want), what);
        const viaMake = new Float32Array(all.length);
        quant.makeDecoder(p)(0, all.length, viaMake);
        assert.deepEqual(viaMake, all, `${what}: makeDecoder`);
        // Any window decodes to the same elements (panels, rows and block boundaries).
        for (let t = 0; t < 8; t++) {
          const i0 = rng.int(all.length), n = 1 + rng.int(all.length - i0);
          const out = new Float32Array(n);
          spec.decoder(p)(i0, n, out);
          assert.deepEqual(out, all.subarray(i0, i0 + n), `${what}: window ${i0}+${n}`);
        }
      }
    }
    // A container of another format is refused.
    const other = name === "f32"
      ? quant.quantizeF16
      : (w: Float32Array, s: number[]) => new quant.F32Weight(w, s);
    const foreign = other(new Float32Array(4), [2, 2]);
    assert.throws(() => spec.pack(foreign), /unsupported weight container/);
  });

  Deno.test(`formats: ${name}: bits per weight and code table`, () => {
    const [N, K] = [256, 1024]; // whole blocks and whole nested blocks
    const rng = new Rng(1950);
    const w = randomWeights(rng, N * K);
    for (const opts of [{}, { doubleQuant: true }]) {
      const q = spec.quantize(w, [N, K], opts);
      const extra = q.bitsPerParameter - spec.bitsPerWeight(opts);
      // Only per-tensor constants (32 bits) and int8-row's per-row scales (32 / K) are left out.
      assert.ok(extra >= -1e-12 && extra <= 32 / K + 32 / (N * K) + 1e-12, `${name}: ${extra}`);
    }
    if (spec.table) {
      assert.equal(spec.table.length, 16);
      const q = spec.quantize(w, [N, K]);
      assert.ok(q instanceof quant.Blockwise4Weight);
      assert.deepEqual(q.codeTable(), Float32Array.from(spec.table));
    }
  });

  bothBackends(`formats: ${name}: the WGSL decoders equal the CPU twin`, async (dev) => {
    const rng = new Rng(1970 + NAMES.indexOf(name));
    for (const opts of OPTIONS) {
      for (const [N, K] of SHAPES.slice(1)) {
        const what = `${name} ${JSON.stringify(opts)} [${N},${K}] ${dev.kind}`;
        const q = spec.quantize(randomWeights(rng, N * K), [N, K], opts);
        const want = decodeAll(spec, spec.pack(q)); // W [N, K]
        const slack = dequantSlack(q); // WGSL's division and fma contraction; 0 elsewhere
        const w = toDevice(dev, q);
        const d = dequantizeOnDevice(w);
        assertClose(await d.toArray(), want, slack, `${what}: dequantize kernel`);
        d.dispose();
        // Products with the identity read W exactly: eye(K) · Wᵀ = Wᵀ and eye(N) · W = W.
        const wantT = new Float32Array(N * K), slackT = new Float64Array(N * K); // Wᵀ [K, N]
        for (let n = 0; n < N; n++) {
          for (let k = 0; k < K; k++) {
            [wantT[k * N + n], slackT[k * N + n]] = [want[n * K + k], slack[n * K + k]];
          }
        }
        for (const path of ["matvec", "tiled"] as const) {
          for (const transW of [false, true]) {
            const rows = transW ? N : K;
            const eye = new Array<number>(rows * rows).fill(0);
            for (let i = 0; i < rows; i++) eye[i * rows + i] = 1;
            const x = Tensor.fromArray(eye, [rows, rows], { device: dev });
            const y = qmatmul(x, w, { path, transW });
            const [exp, tol] = transW ? [want, slack] : [wantT, slackT];
            assertClose(await y.toArray(), exp, tol, `${what}: ${path}${transW ? " transW" : ""}`);
            x.dispose();
            y.dispose();
          }
        }
        w.dispose();
      }
    }
  });
}
