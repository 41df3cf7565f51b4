/**
 * Causal self-attention on WebGPU: the fused kernels (`kernels/attention.ts`, one dispatch forward,
 * two backward) against the composed ops (permute, batched matmuls, scale, causal softmax) at the
 * same shapes, side by side in one run; forward alone and forward + backward (the gradient of a
 * packed [B, T, 3C] qkv), ms per call timed by the slope of k vs 2k calls per GPU wait
 * (bench/timing.ts). The fused kernels keep a query (or key) row per thread; whether that beats
 * tuned matmuls at long contexts on a given GPU is what this measures.
 *
 * Flags: `--json`, `--min-ms 300`, `--shapes BxNHxTxHD,…` (default the shipped model's 8×6×128×32
 * and GPT-2 small's 8×12×1024×64 on a hardware adapter; 8×6×128×32 and 1×2×256×64 on a software
 * one).
 */

import { parseArgs } from "node:util";
import {
  attentionMode,
  causalSelfAttentionQkv,
  getDevice,
  mul,
  scope,
  setAttentionMode,
  sum,
  Tape,
  Tensor,
  WebGpuBackend,
} from "../lib/mod.ts";
import { timePerCall } from "./timing.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    "min-ms": { type: "string", default: "300" },
    shapes: { type: "string" },
  },
});
const minMs = Number(values["min-ms"]);
const dev = await getDevice({ backend: "webgpu", quiet: true });
if (!(dev instanceof WebGpuBackend)) throw new Error("bench attention: no WebGPU backend");
const software = dev.engine.isSoftware;
const shapes = (values.shapes ?? (software ? "8x6x128x32,1x2x256x64" : "8x6x128x32,8x12x1024x64"))
  .split(",").map((s) => s.split("x").map(Number));
if (
  !(minMs > 0) ||
  shapes.some((s) => s.length !== 4 || s.some((v) => !(Number.isInteger(v) && v > 0)))
) {
  console.error("bench attention: --min-ms takes a number, --shapes BxNHxTxHD,… positive integers");
  Deno.exit(2);
}

interface Row {
  shape: string;
  mode: "fused" | "composed";
  pass: "forward" | "forward+backward";
  ms: number;
  dispatches: number;
}
const rows: Row[] = [];
for (const [B, nh, T, hd] of shapes) {
  const C = nh * hd;
  const qkv = Tensor.randn([B, T, 3 * C], { device: dev, seed: 1 });
  const w = Tensor.randn([B, T, C], { device: dev, seed: 2 });
  for (const mode of ["fused", "composed"] as const) {
    setAttentionMode(mode === "fused" ? "auto" : "composed");
    const forward = () => causalSelfAttentionQkv(qkv, nh).dispose();
    const both = () =>
      scope(() => {
        const tape = new Tape();
        tape.watch(qkv);
        const loss = tape.run(() => sum(mul(causalSelfAttentionQkv(qkv, nh), w).reshape([-1]), 0));
        tape.backward(loss).get(qkv)!.dispose();
      });
    for (const [pass, fn] of [["forward", forward], ["forward+backward", both]] as const) {
      const d0 = dev.engine.dispatches;
      fn();
      const dispatches = dev.engine.dispatches - d0;
      const { ms } = await timePerCall(fn, () => dev.sync(), minMs);
      rows.push({ shape: `${B}x${nh}x${T}x${hd}`, mode, pass, ms, dispatches });
    }
  }
  setAttentionMode("auto");
  qkv.dispose();
  w.dispose();
}
if (attentionMode() !== "auto") throw new Error("bench attention: mode not restored");

if (values.json) {
  console.log(JSON.stringify(
    {
      bench: "attention",
      deno: Deno.version.deno,
      date: new Date().toISOString(),
      adapter: dev.description,
      software,
      rows,
    },
    null,
    2,
  ));
} else {
  console.log(`causal self-attention, ms per call (webgpu: ${dev.description})`);
  console.log(
    "B×nh×T×hd         pass               fused (disp)      composed (disp)   composed/fused",
  );
  for (let i = 0; i < rows.length; i += 4) {
    for (const j of [0, 1]) {
      const f = rows[i + j], c = rows[i + 2 + j];
      console.log(
        `${f.shape.padEnd(17)} ${f.pass.padEnd(18)} ${
          f.ms.toFixed(3).padStart(9)
        } (${f.dispatches})` +
          `${c.ms.toFixed(3).padStart(12)} (${c.dispatches})`.padEnd(22) +
          `${(c.ms / f.ms).toFixed(2).padStart(10)}`,
      );
    }
  }
}
