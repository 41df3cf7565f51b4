/**
 * Quantizing one weight for a WebGPU model (issue 16 item 1): the CPU quantizer then the upload
 * (`toDevice(dev, quantize(…))`, the loader's path before) against the on-device quantizer
 * (`quantizeToDevice`: the f32 upload, `quantize4Kernel`, the absmax read back for double
 * quantization). NF4 + double quantization, block 64, TinyLlama's MLP shape 2048 × 5632 by
 * default; the two alternate, each timed to the end of its GPU work (`engine.sync()`), after one
 * warm-up each; prints every run and the medians, and the f32 upload alone for scale.
 *
 * Run: `deno run --allow-read --allow-env --allow-ffi=/usr/lib bench/quantize4.ts [reps] [N] [K]`
 *
 * @module
 */

import type { WebGpuBackend } from "../lib/backend/webgpu/webgpu_backend.ts";
import { getDevice, Rng } from "../lib/mod.ts";
import { quantize, quantizeToDevice, toDevice } from "../lib/quant/mod.ts";

const reps = Number(Deno.args[0] ?? 3);
const N = Number(Deno.args[1] ?? 2048), K = Number(Deno.args[2] ?? 5632);
const dev = await getDevice({ backend: "webgpu" });
const engine = (dev as WebGpuBackend).engine;
const rng = new Rng(1);
const w = Float32Array.from({ length: N * K }, () => 0.02 * rng.normal());
const opts = { blockSize: 64, doubleQuant: true };

const variants = {
  "CPU quantize + upload": () => Promise.resolve(toDevice(dev, quantize(w, [N, K], "nf4", opts))),
  "GPU kernel (upload f32, quantize, absmax back, DQ)": () =>
    quantizeToDevice(dev, w, [N, K], "nf4", opts),
  "f32 upload alone (the GPU path's first step)": () => {
    const b = engine.alloc(w.byteLength);
    engine.write(b, w);
    return Promise.resolve({ dispose: () => engine.release(b) });
  },
};
const times: Record<string, number[]> = {};
for (let r = 0; r <= reps; r++) {
  for (const [name, f] of Object.entries(variants)) {
    await engine.sync();
    const t = performance.now();
    const dw = await f();
    await engine.sync();
    const ms = performance.now() - t;
    dw.dispose();
    if (r === 0) continue; // warm-up (pipeline compile, buffer pool)
    (times[name] ??= []).push(ms);
    console.log(`${name}: ${ms.toFixed(0)} ms`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\n${N} × ${K} nf4 + dq, ${engine.description}: median ms of ${reps}`);
for (const [name, xs] of Object.entries(times)) {
  console.log(
    `  ${name}: ${median(xs).toFixed(0)} ms (${(median(xs) * 1e6 / (N * K)).toFixed(1)} ns/weight)`,
  );
}
