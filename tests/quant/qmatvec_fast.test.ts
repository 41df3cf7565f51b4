// The fast CPU matrix–vector product of 4-bit blockwise weights (qmatvecCpuFast: the SIMD kernel
// on one or two threads where blocks lie inside rows and hold 32·j weights, pair look-up tables
// otherwise, odd K exactly) against the float64 reference qmatmulCpu, for NF4 / FP4 / int4 with
// and without double quantization, M = 1…4 rows, with and without bias, on random data whose K
// and N are not multiples of the 8-weight word, the absmax block or the threads' chunks (odd K
// included). Tolerance (qmatvec_cpu_fast.ts): (blockSize/16 + 6)·2^-24·Σ_k|x_k·w_nk| on the
// SIMD path (f32 sums within a block), 2·2^-24·Σ_k|x_k·w_nk| on the pair tables (f64 sums),
// plus one f32 ulp of y per side.
import assert from "node:assert/strict";
import { cpu, quant, Rng, Tensor } from "../../lib/mod.ts";
import { matvecWasm, matvecWasmBytes } from "../../lib/quant/qmatvec_wasm.ts";
import { simdModuleBytes } from "../../lib/quant/qmatvec_simd.ts";
import { helperChunks, setMatvecThreads } from "../../lib/quant/qmatvec_threads.ts";
import { arenaAddr, setArenaLimit } from "../../lib/quant/wasm_arena.ts";
import { randData } from "../harness.ts";
import { randomWeight, VARIANTS } from "./qmatmul_util.ts";

const FOUR_BIT = VARIANTS.filter((v) =>
  v.format === "nf4" || v.format === "fp4" || v.format === "int4"
);
const DIMS = [1, 2, 3, 7, 8, 13, 40, 63, 64, 65, 130, 257];
/** K that the SIMD path takes with blocks of 32, 64 or 128 (and a few that it does not). */
const SIMD_K = [64, 128, 192, 256, 320, 384, 448, 96, 160];

/** Whether qmatvecCpuFast takes the SIMD path for this layout. */
function simdPath(l: quant.PackedLayout): boolean {
  return l.K % l.blockSize === 0 && l.blockSize % 32 === 0;
}

/** Asserts |fast − ref| within the module comment's bound for each output. */
function assertBound(
  what: string,
  layout: quant.PackedLayout,
  arrays: quant.PackedArrays,
  x: Float32Array,
  M: number,
  fast: Float32Array,
  ref: Float32Array,
) {
  const { N, K } = layout;
  const c = simdPath(layout) ? layout.blockSize / 16 + 6 : 2;
  const w = quant.dequantizeCpu(layout, arrays);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let mag = 0;
      for (let k = 0; k < K; k++) mag += Math.abs(x[m * K + k] * w[n * K + k]);
      const r = ref[m * N + n];
      const tol = c * 2 ** -24 * mag * (1 + 1e-6) + 2 ** -23 * Math.abs(r) + 1e-38;
      const d = Math.abs(fast[m * N + n] - r);
      assert.ok(d <= tol, `${what} [${m},${n}]: ${fast[m * N + n]} vs ${r} (|d| ${d} > ${tol})`);
    }
  }
}

Deno.test("qmatvec fast: the WebAssembly module assembles, validates and instantiates", () => {
  assert.ok(WebAssembly.validate(matvecWasmBytes() as BufferSource));
  assert.ok(matvecWasm());
});

Deno.test("qmatvec fast: within the documented bound of the float64 reference, wasm = TS", () => {
  const rng = new Rng(16);
  for (const v of FOUR_BIT) {
    for (let trial = 0; trial < 16; trial++) {
      const N = DIMS[rng.int(DIMS.length)];
      const K = trial % 2 ? SIMD_K[rng.int(SIMD_K.length)] : DIMS[rng.int(DIMS.length)];
      const M = 1 + rng.int(4);
      const { layout, arrays } = quant.packWeight(randomWeight(rng, v, N, K));
      assert.ok(quant.hasFastMatvec(layout));
      const x = Float32Array.from(randData(rng, M * K));
      const bias = rng.int(2) ? Float32Array.from(randData(rng, N)) : null;
      const ref = quant.qmatmulCpu(layout, arrays, x, M, bias, false);
      const fast = quant.qmatvecCpuFast(layout, arrays, x, M, bias);
      const ts = quant.qmatvecCpuFast(layout, arrays, x, M, bias, { wasm: false });
      const what = `${v.name} M=${M} N=${N} K=${K} block ${layout.blockSize} bias ${!!bias}`;
      assert.deepEqual(fast, ts, `${what}: wasm and TS differ`);
      if (K % 2 === 1) {
        assert.deepEqual(fast, ref, `${what}: odd K should equal the reference`);
        continue;
      }
      assertBound(what, layout, arrays, x, M, fast, ref);
    }
  }
});

Deno.test("qmatvec fast: SIMD module validates; arena weights, copies, one or two threads and TS agree", async () => {
  assert.ok(simdModuleBytes(), "WebAssembly SIMD is missing");
  const rng = new Rng(21);
  // N·K ≥ 2^16 (two threads), N not a multiple of the 4-row chunks nor of 64.
  const shapes: [number, number, number][] = [[301, 256, 64], [517, 384, 128], [1030, 64, 32]];
  const deadline = performance.now() + 20000;
  for (const v of FOUR_BIT) {
    for (const [N, K, blockSize] of shapes) {
      const w = Float32Array.from(randData(rng, N * K, 0.5));
      const q = quant.quantize(w, [N, K], v.format, {
        blockSize,
        doubleQuant: v.doubleQuant,
        dqBlockSize: 7,
      });
      const dw = quant.toDevice(cpu, q);
      const resident = dw.hostArrays(), { layout, arrays } = quant.packWeight(q);
      assert.ok(arenaAddr(resident.data) >= 0 && arenaAddr(arrays.data) < 0);
      const x = Float32Array.from(randData(rng, K));
      const ts = quant.qmatvecCpuFast(layout, arrays, x, 1, null, { wasm: false });
      const what = `${v.name} N=${N} K=${K} block ${blockSize}`;
      setMatvecThreads(1);
      assert.deepEqual(quant.qmatvecCpuFast(layout, resident, x, 1, null), ts, `${what}: 1 thread`);
      setMatvecThreads(2);
      // Until the helper has run chunks of this weight (it starts in the background).
      const before = helperChunks();
      do {
        assert.deepEqual(quant.qmatvecCpuFast(layout, resident, x, 1, null), ts, `${what}: 2`);
        assert.deepEqual(quant.qmatvecCpuFast(layout, arrays, x, 1, null), ts, `${what}: copy`);
        if (helperChunks() === before) await new Promise((r) => setTimeout(r, 5));
      } while (helperChunks() === before && performance.now() < deadline);
      assert.ok(helperChunks() > before, `${what}: the helper thread never ran`);
      assertBound(
        what,
        layout,
        arrays,
        x,
        1,
        ts,
        quant.qmatmulCpu(layout, arrays, x, 1, null, false),
      );
      dw.dispose();
    }
  }
});

Deno.test("qmatvec fast: a full arena leaves weights in plain arrays, same bits", () => {
  const rng = new Rng(4);
  const N = 96, K = 192;
  const q = quant.quantize(Float32Array.from(randData(rng, N * K)), [N, K], "nf4", {
    doubleQuant: true,
  });
  const old = setArenaLimit(0);
  let dw;
  try {
    dw = quant.toDevice(cpu, q);
  } finally {
    setArenaLimit(old);
  }
  const held = dw.hostArrays(), { layout, arrays } = quant.packWeight(q);
  assert.ok(arenaAddr(held.data) < 0);
  const x = Float32Array.from(randData(rng, 2 * K));
  assert.deepEqual(
    quant.qmatvecCpuFast(layout, held, x, 2, null),
    quant.qmatvecCpuFast(layout, arrays, x, 2, null, { wasm: false }),
  );
});

Deno.test("qmatvec fast: qmatmul on the CPU takes it for ≤ 4 rows of x · Wᵀ only", async () => {
  const dev = cpu;
  const rng = new Rng(5);
  const N = 70, K = 96;
  const q = randomWeight(rng, { name: "nf4+dq", format: "nf4", doubleQuant: true }, N, K);
  const { layout, arrays } = quant.packWeight(q);
  const w = quant.toDevice(dev, q);
  for (const M of [1, 4, 5]) {
    const xs = Float32Array.from(randData(rng, M * K));
    const y = await quant.qmatmul(Tensor.fromArray(xs, [M, K], { device: dev }), w).toArray();
    const want = M <= quant.MATVEC_MAX_ROWS
      ? quant.qmatvecCpuFast(layout, arrays, xs, M, null)
      : quant.qmatmulCpuPanels(layout, arrays, xs, M, null, false);
    assert.deepEqual(Float32Array.from(y), want, `M=${M}`);
    // x · W (transW, the backward's product) stays on the reference loop.
    const xt = Float32Array.from(randData(rng, M * N));
    const xtt = Tensor.fromArray(xt, [M, N], { device: dev });
    const yt = quant.qmatmul(xtt, w, { transW: true, path: "matvec" });
    assert.deepEqual(
      Float32Array.from(await yt.toArray()),
      quant.qmatmulCpu(layout, arrays, xt, M, null, true),
    );
  }
});

Deno.test("qmatvec fast: pair tables kept between calls are rebuilt when x or the format changes", () => {
  const rng = new Rng(9);
  const K = 72, N = 33;
  const nf4 = quant.packWeight(randomWeight(rng, FOUR_BIT[0], N, K));
  const fp4 = quant.packWeight(
    quant.quantize(Float32Array.from(randData(rng, N * K)), [N, K], "fp4"),
  );
  const x1 = Float32Array.from(randData(rng, K)), x2 = x1.slice();
  x2[K - 1] = -x2[K - 1]; // one value differs
  const x3 = x1.slice();
  x3[5] = x1[5] === 0 ? 1 : 0; // and a zero
  for (
    const [p, x] of [[nf4, x1], [nf4, x1], [nf4, x2], [fp4, x2], [fp4, x3], [nf4, x3]] as const
  ) {
    const want = quant.qmatvecCpuFast(p.layout, p.arrays, x, 1, null, { wasm: false });
    assert.deepEqual(quant.qmatvecCpuFast(p.layout, p.arrays, x, 1, null), want);
  }
});

Deno.test("qmatvec fast: the column-blocked loop (blocks inside rows) gives the row loop's bits", () => {
  const rng = new Rng(3);
  const old = quant.setColBytes(1);
  try {
    for (
      const [N, K, blockSize, C] of [[9, 640, 64, 64], [5, 480, 32, 48], [7, 240, 40, 1], [
        4,
        256,
        128,
        1e6,
      ]]
    ) {
      quant.setColBytes(C);
      const w = Float32Array.from(randData(rng, N * K));
      for (const doubleQuant of [false, true]) {
        const { layout, arrays } = quant.packWeight(
          quant.quantize(w, [N, K], "nf4", { blockSize, doubleQuant, dqBlockSize: 3 }),
        );
        const x = Float32Array.from(randData(rng, 2 * K));
        const ts = quant.qmatvecCpuFast(layout, arrays, x, 2, null, { wasm: false });
        assert.deepEqual(
          quant.qmatvecCpuFast(layout, arrays, x, 2, null),
          ts,
          `N=${N} K=${K} C=${C}`,
        );
      }
    }
  } finally {
    quant.setColBytes(old);
  }
});
