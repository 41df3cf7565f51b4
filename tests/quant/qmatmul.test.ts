// Fused quantized products on both backends against "de-quantize on the CPU with lib/quant,
// then multiply in float64" (tolerances in qmatmul_util.ts: the float32 accumulation bound
// 2·(n+2)·u·Σ|x||w| plus the de-quantization slack of int8 and double quantization), for every
// format × double quantization × transW × bias, on random shapes that include 1 row and sizes
// that are not multiples of the 64×64 tile, the 8-column word or the absmax block.
import assert from "node:assert/strict";
import { type Backend, quant, Rng, Tensor } from "../../lib/mod.ts";
import { MATMUL_VARIANTS, type WebGpuBackend } from "../../lib/backend/webgpu/mod.ts";
import { assertClose, bothBackends, gpu, randData } from "../harness.ts";
import { qmatmulRef, randomWeight, VARIANTS } from "./qmatmul_util.ts";

const { qmatmul, toDevice } = quant;

// Sizes straddle the 64 tile, the 8-weight word and the 256-column matvec workgroup.
const DIMS = [1, 3, 8, 13, 63, 64, 65, 130, 257];
const ROWS = [1, 2, 4, 5, 17, 70];

async function run(
  dev: Backend,
  variant: (typeof VARIANTS)[number],
  seed: number,
  trials: number,
): Promise<void> {
  const rng = new Rng(seed);
  const paths: quant.QmatmulPath[] = ["tiled", "matvec"];
  for (let trial = 0; trial < trials; trial++) {
    const N = DIMS[rng.int(DIMS.length)], K = DIMS[rng.int(DIMS.length)];
    const M = ROWS[rng.int(ROWS.length)];
    const transW = trial % 2 === 1, withBias = rng.int(2) === 1;
    const q = randomWeight(rng, variant, N, K);
    const inner = transW ? N : K, outs = transW ? K : N;
    const x = Float32Array.from(randData(rng, M * inner));
    const bias = withBias ? Float32Array.from(randData(rng, outs)) : null;
    const ref = qmatmulRef(q, x, M, bias, transW);
    const w = toDevice(dev, q);
    // x with a leading batch dim when M allows it: [b, M/b, inner].
    const xShape = M % 2 === 0 ? [2, M / 2, inner] : [M, inner];
    const xt = Tensor.fromArray(x, xShape, { device: dev });
    const bt = bias ? Tensor.fromArray(bias, [outs], { device: dev }) : undefined;
    for (const path of paths) {
      const y = qmatmul(xt, w, { transW, bias: bt, path });
      assert.deepEqual(y.shape, [...xShape.slice(0, -1), outs]);
      const what = `${variant.name} ${path} M${M} N${N} K${K} transW ${transW} bias ${withBias}`;
      assertClose(await y.toArray(), ref.out, ref.tol, what);
      y.dispose();
    }
    w.dispose();
    xt.dispose();
    bt?.dispose();
  }
}

VARIANTS.forEach((v, i) => {
  bothBackends(`qmatmul ${v.name}: random shapes, transW, bias vs float64`, async (dev) => {
    await run(dev, v, 100 + i, 8);
  });
});

Deno.test("qmatmul: webgpu equals the cpu twin (nf4+dq, int8-row, f16)", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const g = await gpu();
  const rng = new Rng(7);
  for (const v of VARIANTS.filter((v) => ["nf4+dq", "int8-row", "f16"].includes(v.name))) {
    const [M, N, K] = [37, 131, 77];
    const q = randomWeight(rng, v, N, K);
    for (const transW of [false, true]) {
      const inner = transW ? N : K;
      const x = Float32Array.from(randData(rng, M * inner));
      const ref = qmatmulRef(q, x, M, null, transW);
      const cpuY = await qmatmul(Tensor.fromArray(x, [M, inner]), toDevice(quant_cpu(), q), {
        transW,
      }).toArray();
      for (const path of ["tiled", "matvec"] as const) {
        const w = toDevice(g, q);
        const gpuY = await qmatmul(Tensor.fromArray(x, [M, inner], { device: g }), w, {
          transW,
          path,
        }).toArray();
        w.dispose();
        // Both are within ref.tol of the exact value, hence within twice that of each other.
        assertClose(gpuY, cpuY, ref.tol.map((t) => 2 * t), `${v.name} ${path} transW ${transW}`);
      }
    }
  }
});

Deno.test(
  "qmatmul tiled: the f32 matmul variants with the weight decoders (vec4 and scalar loads)",
  {
    sanitizeResources: false,
    sanitizeOps: false,
  },
  async () => {
    const g = (await gpu()) as WebGpuBackend;
    const rng = new Rng(8);
    // K = 132 (a multiple of 4: wload4) and 77 (scalar wval); N = 131 and 129 straddle the tiles.
    const shapes: [number, number, number][] = [[70, 131, 132], [9, 129, 77]];
    try {
      // Every variant with the 4-bit decoder (double quantization); two with int8 and f16 (their
      // wload4 / wval differ; the tile geometry is the same code as for nf4). ~70 pipelines.
      const plan: [string, string[]][] = [
        ["nf4+dq", MATMUL_VARIANTS.map((m) => m.name)],
        ["int8-row", ["t64", "t128"]],
        ["f16", ["t64", "t128db"]],
      ];
      for (const [name, names] of plan) {
        const v = VARIANTS.find((x) => x.name === name)!;
        for (const [M, N, K] of shapes) {
          const q = randomWeight(rng, v, N, K);
          const w = toDevice(g, q);
          for (const transW of [false, true]) {
            const inner = transW ? N : K, outs = transW ? K : N;
            const x = Float32Array.from(randData(rng, M * inner));
            const bias = Float32Array.from(randData(rng, outs));
            const ref = qmatmulRef(q, x, M, bias, transW);
            const xt = Tensor.fromArray(x, [M, inner], { device: g });
            const bt = Tensor.fromArray(bias, [outs], { device: g });
            for (const mv of MATMUL_VARIANTS.filter((m) => names.includes(m.name))) {
              if (!g.matmulVariantFits(mv)) continue;
              g.forceMatmulVariant(mv.name);
              const y = qmatmul(xt, w, { transW, bias: bt, path: "tiled" });
              const what = `${v.name} ${mv.name} M${M} N${N} K${K} transW ${transW}`;
              assertClose(await y.toArray(), ref.out, ref.tol, what);
              y.dispose();
            }
            xt.dispose();
            bt.dispose();
          }
          w.dispose();
        }
      }
    } finally {
      g.forceMatmulVariant(null);
    }
  },
);

function quant_cpu(): Backend {
  return Tensor.zeros([1]).backend; // the CPU backend (Tensor's default device)
}

Deno.test("qmatmul: shape and backend errors name the problem", async () => {
  const q = quant.quantize(new Float32Array(12), [3, 4], "nf4");
  const w = toDevice(quant_cpu(), q);
  assert.throws(() => qmatmul(Tensor.zeros([2, 3]), w), /x's last dim should be 4/);
  assert.throws(
    () => qmatmul(Tensor.zeros([2, 3]), w, { transW: true, bias: Tensor.zeros([3]) }),
    /bias \[3\] should be \[4\]/,
  );
  assert.throws(
    () => toDevice(quant_cpu(), quant.quantize(new Float32Array(8), [8], "f16")),
    /2-D/,
  );
  const g = await gpu();
  assert.throws(() => qmatmul(Tensor.zeros([2, 4], { device: g }), w), /different backends/);
  w.dispose();
  assert.throws(() => qmatmul(Tensor.zeros([2, 4]), w), /after dispose/);
});

Deno.test(
  "qmatmul M = 1 (generation) runs one matrix-vector dispatch, long rows included",
  { sanitizeResources: false, sanitizeOps: false },
  async () => {
    const g = (await gpu()) as WebGpuBackend;
    const rng = new Rng(12);
    // Rows of many 256-column passes per lane; 1031 is not a multiple of 8 (the scalar decoder).
    for (const v of VARIANTS.filter((v) => ["nf4+dq", "nf4", "int8-row", "f16"].includes(v.name))) {
      for (const [N, K] of [[19, 2072], [9, 1031]]) {
        const q = randomWeight(rng, v, N, K);
        const x = Float32Array.from(randData(rng, K));
        const ref = qmatmulRef(q, x, 1, null, false);
        const w = toDevice(g, q);
        const xt = Tensor.fromArray(x, [1, 1, K], { device: g });
        const k0 = new Map(g.engine.dispatchesByKernel), d0 = g.engine.dispatches;
        const y = qmatmul(xt, w); // path auto
        const ran = [...g.engine.dispatchesByKernel].filter(([k, n]) => n > (k0.get(k) ?? 0));
        assert.equal(g.engine.dispatches - d0, 1);
        assert.match(ran[0][0], /^qmatvec:.*:t0:r1a?$/, `${v.name}: ${ran[0][0]}`);
        assertClose(await y.toArray(), ref.out, ref.tol, `${v.name} M1 N${N} K${K}`);
        for (const t of [y, xt]) t.dispose();
        w.dispose();
      }
    }
  },
);

Deno.test(
  "qmatmul: the 4-bit code table in workgroup memory (the GPU default) gives the private table's bits",
  { sanitizeResources: false, sanitizeOps: false },
  async () => {
    const g = (await gpu()) as WebGpuBackend;
    const rng = new Rng(21);
    const prev = g.quantCodeTable;
    try {
      // The three tables, and double quantization once (its amax path has no table).
      const names = ["nf4", "nf4+dq", "fp4", "int4"];
      for (const v of VARIANTS.filter((v) => quant.isFormat4(v.format) && names.includes(v.name))) {
        // M = 1, 3, 5 (matvec, also split 4 + 1) and 70 (tiled); K = 72 (aligned words), 77.
        const cases: [number, number, number, boolean][] = [
          [1, 37, 72, false],
          [3, 29, 77, true],
          [5, 19, 77, false],
          [70, 131, 72, false],
        ];
        for (const [M, N, K, transW] of cases) {
          const q = randomWeight(rng, v, N, K);
          const inner = transW ? N : K;
          const x = Float32Array.from(randData(rng, M * inner));
          const ref = qmatmulRef(q, x, M, null, transW);
          const out: Record<string, Float32Array[]> = {};
          for (const table of ["private", "workgroup"] as const) {
            g.quantCodeTable = table;
            assert.equal(g.codeTable(), table);
            const w = toDevice(g, q);
            const xt = Tensor.fromArray(x, [M, inner], { device: g });
            const y = qmatmul(xt, w, { transW });
            const d = quant.dequantizeOnDevice(w);
            out[table] = [(await y.toArray()) as Float32Array, (await d.toArray()) as Float32Array];
            for (const t of [y, d, xt]) t.dispose();
            w.dispose();
          }
          const what = `${v.name} M${M} N${N} K${K} transW ${transW}`;
          assertClose(out.workgroup[0], ref.out, ref.tol, what);
          assert.deepEqual(out.workgroup[0], out.private[0], `${what}: product`);
          assert.deepEqual(out.workgroup[1], out.private[1], `${what}: de-quantized`);
        }
      }
    } finally {
      g.quantCodeTable = prev;
    }
  },
);
