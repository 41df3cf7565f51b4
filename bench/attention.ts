/**
 * Causal self-attention on WebGPU, three ways side by side in one run: the tiled fused kernels
 * (`kernels/attention_tiled.ts`, FlashAttention-2-style blocks; one dispatch forward, two
 * backward), the row kernels (`kernels/attention.ts`, a query or key row per thread) and the
 * composed ops (permute, batched matmuls, scale, causal softmax); forward alone and forward +
 * backward (the gradient of a packed [B, T, 3C] qkv), ms per call timed by the slope of k vs 2k
 * calls per GPU wait (bench/timing.ts). Last for each shape, `auto`: the path the selection of
 * `lib/ops/attention_select.ts` picks (`path`; on a hardware adapter, or with `--tune`, after
 * timing the candidates once with `tuneAttention`, as a training run does; else the untuned
 * default), timed the same way, with `auto_vs_best` = its ms / the fastest row of the shape and
 * pass (1.00 when auto picked the fastest path; tiled rows at budgets or thread counts other than
 * the backend's default are not auto's to pick).
 *
 * Flags: `--json`, `--min-ms 300`, `--tile-bytes 0,32768` (workgroup-memory budgets of the tiled
 * kernels, one run each; 0 = the device's limit), `--threads 128,64` (threads per workgroup of the
 * tiled kernels, one run each; default the backend's choice for the adapter), `--shapes BxNHxTxHD,…` (default the shipped
 * model's 8×6×128×32 and GPT-2 small's 8×12×1024×64 on a hardware adapter; 8×6×128×32 and
 * 1×2×256×64 on a software one), `--tune` (tune the auto choice on a software adapter too).
 */

import { parseArgs } from "node:util";
import {
  attentionMode,
  attentionPath,
  causalSelfAttentionQkv,
  clearAttentionChoices,
  getDevice,
  mul,
  scope,
  setAttentionMode,
  sum,
  Tape,
  Tensor,
  tuneAttention,
} from "../lib/mod.ts";
import { WebGpuBackend } from "../lib/backend/webgpu/mod.ts";
import { timePerCall } from "./timing.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    "min-ms": { type: "string", default: "300" },
    shapes: { type: "string" },
    "tile-bytes": { type: "string", default: "0" },
    threads: { type: "string", default: "" },
    tune: { type: "boolean", default: false },
  },
});
// Workgroup-memory budgets for the tiled kernels (0: the device's limit); each picks its tiles.
const tileBytes = values["tile-bytes"].split(",").map(Number);
// Threads per workgroup of the tiled kernels (empty: the backend's default for this adapter).
const threadList = values.threads === "" ? [null] : values.threads.split(",").map(Number);
const minMs = Number(values["min-ms"]);
const dev = await getDevice({ backend: "webgpu", quiet: true });
if (!(dev instanceof WebGpuBackend)) throw new Error("bench attention: no WebGPU backend");
const software = dev.engine.isSoftware;
const shapes = (values.shapes ?? (software ? "8x6x128x32,1x2x256x64" : "8x6x128x32,8x12x1024x64"))
  .split(",").map((s) => s.split("x").map(Number));
if (
  !(minMs > 0) ||
  shapes.some((s) => s.length !== 4 || s.some((v) => !(Number.isInteger(v) && v > 0))) ||
  tileBytes.some((b) => !(Number.isInteger(b) && b >= 0)) ||
  threadList.some((t) => t !== null && t !== 64 && t !== 128)
) {
  console.error(
    "bench attention: --min-ms takes a number, --shapes BxNHxTxHD,… positive integers, " +
      "--tile-bytes integers ≥ 0 (0: the device's limit), --threads 64 and/or 128",
  );
  Deno.exit(2);
}

interface Row {
  shape: string;
  mode: "tiled" | "rows" | "composed" | "auto";
  /** auto: the path it ran. */
  path?: string;
  /** auto: whether the path was chosen by timing (`tuneAttention`) rather than the default. */
  tuned?: boolean;
  /** auto: its ms / the fastest row's of the same shape and pass. */
  auto_vs_best?: number;
  /** auto, tuned: ms per forward + backward of each candidate as `tuneAttention` timed them. */
  tuning?: Record<string, number>;
  pass: "forward" | "forward+backward";
  ms: number;
  dispatches: number;
  /** Tile shapes (Br/Bc) of the tiled kernels. */
  tiles?: string;
  /** Workgroup bytes the tiled kernels were allowed (the device's limit unless lowered). */
  tile_bytes?: number;
  /** Why this measurement failed (ms is then NaN). */
  error?: string;
}
const rows: Row[] = [];
for (const [B, nh, T, hd] of shapes) {
  const C = nh * hd;
  const qkv = Tensor.randn([B, T, 3 * C], { device: dev, seed: 1 });
  const w = Tensor.randn([B, T, C], { device: dev, seed: 2 });
  const max = dev.engine.device.limits.maxComputeWorkgroupStorageSize;
  const budgets = [...new Set(tileBytes.map((b) => (b === 0 ? max : Math.min(b, max))))];
  const shape = { B, nHead: nh, T, hd };
  clearAttentionChoices(dev);
  const runs: { mode: Row["mode"]; bytes: number | null; threads: 64 | 128 | null }[] = [
    ...threadList.flatMap((t) =>
      budgets.map((b) => ({ mode: "tiled" as const, bytes: b, threads: t as 64 | 128 | null }))
    ),
    { mode: "rows", bytes: null, threads: null },
    { mode: "composed", bytes: null, threads: null },
    { mode: "auto", bytes: null, threads: null },
  ];
  const seen = new Set<string>();
  for (const { mode, bytes, threads } of runs) {
    setAttentionMode(mode);
    dev.attentionTileBytes = bytes;
    dev.attentionThreads = threads;
    let auto: Partial<Row> = {};
    if (mode === "auto") {
      const tuning = software && !values.tune ? [] : await tuneAttention(dev, [shape], {
        force: true,
        minMs,
      });
      auto = {
        path: attentionPath(dev, shape),
        tuned: tuning.length > 0,
        ...(tuning.length ? { tuning: tuning[0].ms as Record<string, number> } : {}),
      };
    }
    const cfg = mode === "tiled" ? dev.attentionTiles(hd) : null;
    const tiles = cfg
      ? `fwd ${cfg.fwd.br}/${cfg.fwd.bc} dq ${cfg.dq.br}/${cfg.dq.bc} dkv ${cfg.dkv.br}/${cfg.dkv.bc} ` +
        `t${cfg.threads}`
      : undefined;
    if (mode === "tiled" && (!tiles || seen.has(tiles))) continue; // no fit, or tiles already run
    if (tiles) seen.add(tiles);
    const forward = () => causalSelfAttentionQkv(qkv, nh).dispose();
    const both = () =>
      scope(() => {
        const tape = new Tape();
        tape.watch(qkv);
        const loss = tape.run(() => sum(mul(causalSelfAttentionQkv(qkv, nh), w).reshape([-1]), 0));
        tape.backward(loss).get(qkv)!.dispose();
      });
    for (const [pass, fn] of [["forward", forward], ["forward+backward", both]] as const) {
      const row = {
        shape: `${B}x${nh}x${T}x${hd}`,
        mode,
        pass,
        ...auto,
        ...(tiles ? { tiles, tile_bytes: bytes! } : {}),
      };
      // One kernel family failing on an adapter (a driver rejecting a pipeline) must not cost the
      // others' numbers: record the error and go on.
      try {
        const d0 = dev.engine.dispatches;
        fn();
        const dispatches = dev.engine.dispatches - d0;
        const { ms } = await timePerCall(fn, () => dev.sync(), minMs);
        rows.push({ ...row, ms, dispatches });
      } catch (e) {
        await dev.sync().catch(() => {});
        rows.push({ ...row, ms: NaN, dispatches: 0, error: (e as Error).message });
        console.error(`bench attention: ${row.shape} ${mode} ${pass}: ${(e as Error).message}`);
      }
    }
  }
  setAttentionMode("auto");
  dev.attentionTileBytes = null;
  dev.attentionThreads = null;
  qkv.dispose();
  w.dispose();
}
if (attentionMode() !== "auto") throw new Error("bench attention: mode not restored");
for (const r of rows) {
  if (r.mode !== "auto" || !Number.isFinite(r.ms)) continue;
  const best = Math.min(
    ...rows.filter((x) => x.shape === r.shape && x.pass === r.pass && Number.isFinite(x.ms))
      .map((x) => x.ms),
  );
  r.auto_vs_best = r.ms / best;
}

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
    `${"B×nh×T×hd".padEnd(16)} ${"pass".padEnd(17)} ${"kernels".padEnd(49)} ${"ms".padStart(9)} ` +
      `${"disp".padStart(4)}  composed/this`,
  );
  for (const r of rows) {
    const c = rows.find((x) => x.mode === "composed" && x.shape === r.shape && x.pass === r.pass);
    const what = r.tiles
      ? `tiled ${r.tiles} (${r.tile_bytes} B)`
      : r.mode === "auto"
      ? `auto: ${r.path} (${r.tuned ? "tuned" : "default"}), ${r.auto_vs_best?.toFixed(2)}× best`
      : r.mode;
    console.log(
      `${r.shape.padEnd(16)} ${r.pass.padEnd(17)} ${what.padEnd(49)} ${
        r.ms.toFixed(3).padStart(9)
      } ${String(r.dispatches).padStart(4)}  ${c ? (c.ms / r.ms).toFixed(2).padStart(13) : ""}${
        r.error ? `  FAILED: ${r.error}` : ""
      }`,
    );
  }
}
// Every measurement was printed; a failed one still fails the run.
if (rows.some((r) => r.error)) Deno.exit(1);
