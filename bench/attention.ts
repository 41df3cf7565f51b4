/**
 * Causal self-attention on WebGPU, three ways side by side in one run: the tiled fused kernels
 * (`kernels/attention_tiled.ts`, FlashAttention-2-style blocks; one dispatch forward, two
 * backward), the row kernels (`kernels/attention.ts`, a query or key row per thread) and the
 * composed ops (permute, batched matmuls, scale, causal softmax); forward alone and forward +
 * backward (the gradient of a packed [B, T, 3C] qkv), ms per call timed by the slope of k vs 2k
 * calls per GPU wait (bench/timing.ts).
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
  mode: "tiled" | "rows" | "composed";
  pass: "forward" | "forward+backward";
  ms: number;
  dispatches: number;
  /** Tile shapes (Br/Bc) of the tiled kernels. */
  tiles?: string;
}
const rows: Row[] = [];
for (const [B, nh, T, hd] of shapes) {
  const C = nh * hd;
  const qkv = Tensor.randn([B, T, 3 * C], { device: dev, seed: 1 });
  const w = Tensor.randn([B, T, C], { device: dev, seed: 2 });
  const tiled = dev.attentionTiles(hd);
  for (const mode of ["tiled", "rows", "composed"] as const) {
    if (mode === "tiled" && !tiled) continue; // this head's tiles do not fit: the rows run
    setAttentionMode(mode === "composed" ? "composed" : "auto");
    dev.attentionKernels = mode === "rows" ? "rows" : "auto";
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
      const tiles = mode === "tiled"
        ? `fwd ${tiled!.fwd.br}/${tiled!.fwd.bc} dq ${tiled!.dq.br}/${tiled!.dq.bc} dkv ${
          tiled!.dkv.br
        }/${tiled!.dkv.bc}`
        : undefined;
      rows.push({ shape: `${B}x${nh}x${T}x${hd}`, mode, pass, ms, dispatches, tiles });
    }
  }
  setAttentionMode("auto");
  dev.attentionKernels = "auto";
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
    "B×nh×T×hd         pass                   tiled       rows   composed  rows/tiled  composed/tiled",
  );
  const cell = (r?: Row) => (r ? r.ms.toFixed(3) : "-").padStart(10);
  const ratio = (a?: Row, b?: Row) => (a && b ? (a.ms / b.ms).toFixed(2) : "-");
  for (const shape of [...new Set(rows.map((r) => r.shape))]) {
    for (const pass of ["forward", "forward+backward"] as const) {
      const at = (m: Row["mode"]) =>
        rows.find((r) => r.shape === shape && r.pass === pass && r.mode === m);
      const [t, r, c] = [at("tiled"), at("rows"), at("composed")];
      console.log(
        `${shape.padEnd(17)} ${pass.padEnd(18)}${cell(t)} ${cell(r)} ${cell(c)} ${
          ratio(r, t).padStart(11)
        } ${ratio(c, t).padStart(15)}`,
      );
    }
    const t = rows.find((r) => r.shape === shape && r.tiles);
    console.log(`${"".padEnd(17)} tiles: ${t?.tiles ?? "none fit (row kernels)"}`);
  }
}
