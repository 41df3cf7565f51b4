/**
 * Micro-benchmark of the CPU matrix–vector product with NF4 + double-quantized weights (issue 16
 * item 4): the float64 reference `qmatmulCpu` against `qmatvecCpuFast` (WebAssembly loop, and
 * its TypeScript twin), one row of x, TinyLlama's shapes. Each shape cycles through 4 distinct
 * weights with a new x per call, as decoding does (weights cold in cache, tables rebuilt), and
 * the variants alternate within each repetition; prints the median ms per product.
 *
 * Run: `deno run bench/qmatvec.ts [reps]`
 *
 * @module
 */

import { packWeight, qmatmulCpu, qmatvecCpuFast, quantize } from "../lib/quant/mod.ts";
import { Rng } from "../lib/mod.ts";

const reps = Number(Deno.args[0] ?? 5);
const rng = new Rng(1);
const SHAPES: [number, number][] = [[2048, 2048], [256, 2048], [5632, 2048], [2048, 5632]];
console.log(
  "N × K (1 row of x), nf4+dq block 64 | reference | fast (wasm) | fast (TS) | ms per product",
);
for (const [N, K] of SHAPES) {
  const ws = Array.from({ length: 4 }, () => {
    const w = Float32Array.from({ length: N * K }, () => 0.02 * rng.normal());
    return packWeight(quantize(w, [N, K], "nf4", { doubleQuant: true }));
  });
  const variants = {
    reference: (p: (typeof ws)[0], x: Float32Array) =>
      qmatmulCpu(p.layout, p.arrays, x, 1, null, false),
    wasm: (p: (typeof ws)[0], x: Float32Array) => qmatvecCpuFast(p.layout, p.arrays, x, 1, null),
    ts: (p: (typeof ws)[0], x: Float32Array) =>
      qmatvecCpuFast(p.layout, p.arrays, x, 1, null, { wasm: false }),
  };
  const times: Record<string, number[]> = { reference: [], wasm: [], ts: [] };
  for (let r = 0; r <= reps; r++) {
    for (const [name, f] of Object.entries(variants)) {
      const t = performance.now();
      for (const p of ws) f(p, Float32Array.from({ length: K }, () => rng.normal()));
      if (r > 0) times[name].push((performance.now() - t) / ws.length); // r = 0: warm-up
    }
  }
  const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1];
  console.log(
    `${N} × ${K} | ${med(times.reference).toFixed(2)} | ${med(times.wasm).toFixed(2)} | ${
      med(times.ts).toFixed(2)
    }`,
  );
}
