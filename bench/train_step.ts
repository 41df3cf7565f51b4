/**
 * Training-step benchmarks, side by side in one run on each backend: a LoRA layer's forward +
 * backward (f32 base vs NF4 base), and whole training steps (tokens/s) of the shipped model's shape
 * and of a GPT-2-small shape, for full fine-tuning, LoRA and QLoRA (r = 8, α = 16, on c_attn,
 * c_proj and c_fc of every block: all four block linears, as the PyTorch + PEFT anchor).
 *
 * A training step is `trainStep` (lib/train/step.ts), what `deno task train` runs: forward and
 * backward, gradients clipped to norm 1 on the device, AdamW, one readback of loss and norm. Each
 * training-step row names the targeted modules, the number of LoRA layers and the trainable
 * parameter count and the attention path its shape ran (`attention_path`: tiled, rows or
 * composed; on a hardware GPU chosen by timing after the warm-up step, as a run does, with the
 * timings in `attention_tuning`); on WebGPU it also gives the dispatches of one step (with the
 * most frequent kernels), `gpu_waits_per_step`, `submits_per_step` and `buffers_created_per_step`
 * (the engine's counters),
 * `host_ms_per_step` (wall minus GPU ms of the `--profile` steps; null without a profile) and the
 * peak GPU bytes handed out by the engine while the row ran (model, optimizer state and step).
 *
 * Flags: `--json`, `--min-ms 1500` (time per measurement, after one warm-up), `--backends
 * cpu,webgpu`, `--parts layer,shipped` (which benchmarks: `layer`, `shipped`, `gpt2`),
 * `--gpt2-small` (adds `gpt2`: the 124 M shape, slow on a CPU), `--gpt2-batch 8x1024` (batch ×
 * context; default 8x1024 on a hardware adapter, 1x32 on a software one or the CPU),
 * `--gpt2-layers 12`, `--gpt2-vocab 50257` (smaller only for smoke tests: lavapipe's buffers stop
 * at 128 MiB, below the 154 MB token embedding), `--methods full,lora,qlora`,
 * `--attention auto|tiled|rows|composed` (auto: the selection of lib/ops/attention_select.ts;
 * the others force that path where the shape can take it, for comparison), `--profile` (WebGPU with
 * `timestamp-query`: GPU time per kernel family over two more steps, each dispatch in a pass of its
 * own, so apart from the timed steps).
 */

import { parseArgs } from "node:util";
import {
  AdamW,
  type AttentionMode,
  attentionPath,
  type Backend,
  cpu,
  getDevice,
  GPT,
  type GPTConfig,
  Linear,
  LoraLinear,
  preparePeft,
  QuantLinear,
  Rng,
  scope,
  setAttentionMode,
  sum,
  Tape,
  Tensor,
  tuneAttention,
} from "../lib/mod.ts";
import { trainStep } from "../lib/train/step.ts";
import { WebGpuBackend } from "../lib/backend/webgpu/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    "min-ms": { type: "string", default: "1500" },
    "gpt2-small": { type: "boolean", default: false },
    "gpt2-batch": { type: "string" },
    "gpt2-layers": { type: "string", default: "12" },
    "gpt2-vocab": { type: "string", default: "50257" },
    backends: { type: "string", default: "cpu,webgpu" },
    parts: { type: "string", default: "layer,shipped" },
    methods: { type: "string", default: "full,lora,qlora" },
    attention: { type: "string", default: "auto" },
    profile: { type: "boolean", default: false },
  },
});
if (!["auto", "tiled", "rows", "composed"].includes(values.attention)) {
  console.error(`bench: --attention takes auto, tiled, rows or composed, got ${values.attention}`);
  Deno.exit(2);
}
setAttentionMode(values.attention as AttentionMode);
const minMs = Number(values["min-ms"]);
const parts = values.parts.split(",");
if (values["gpt2-small"] && !parts.includes("gpt2")) parts.push("gpt2");
const methods = values.methods.split(",") as ("full" | "lora" | "qlora")[];
const gpt2Layers = Number(values["gpt2-layers"]);
const gpt2Vocab = Number(values["gpt2-vocab"]);
const batchArg = values["gpt2-batch"]?.split("x").map(Number);
const backendNames = values.backends.split(",");
if (
  !(minMs > 0) || parts.some((p) => !["layer", "shipped", "gpt2"].includes(p)) ||
  methods.some((m) => !["full", "lora", "qlora"].includes(m)) ||
  !Number.isInteger(gpt2Layers) || gpt2Layers < 1 || !Number.isInteger(gpt2Vocab) ||
  gpt2Vocab < 2 ||
  (batchArg && (batchArg.length !== 2 || batchArg.some((v) => !Number.isInteger(v) || v < 1))) ||
  (batchArg && batchArg[1] > 1024) || backendNames.some((b) => b !== "cpu" && b !== "webgpu")
) {
  console.error(
    "bench: --min-ms takes a number, --parts some of layer,shipped,gpt2, --methods some of " +
      "full,lora,qlora, --gpt2-batch BxT (T ≤ 1024), --gpt2-layers and --gpt2-vocab positive integers, " +
      "--backends cpu and/or webgpu",
  );
  Deno.exit(2);
}
const backends: Backend[] = [];
for (const b of backendNames) {
  if (b === "cpu") backends.push(cpu);
  else {
    try {
      backends.push(await getDevice({ backend: "webgpu", quiet: true }));
    } catch (e) {
      console.error(`bench: no WebGPU backend (${(e as Error).message})`);
    }
  }
}

/**
 * Repeats `fn` (after one warm-up, then `afterWarmup`) until minMs has passed; mean ms per call.
 */
async function time(
  fn: () => Promise<void>,
  afterWarmup?: () => Promise<unknown>,
): Promise<number> {
  await fn();
  await afterWarmup?.();
  let reps = 0;
  const t0 = performance.now();
  do {
    await fn();
    reps++;
  } while (performance.now() - t0 < minMs);
  return (performance.now() - t0) / reps;
}

interface Row {
  bench: string;
  backend: string;
  adapter: string;
  ms: number;
  tokens_per_s?: number;
  model?: string;
  method?: string;
  batch?: number;
  context?: number;
  targets?: string[];
  lora_layers?: number;
  trainable_params?: number;
  total_params?: number;
  dispatches_per_step?: number;
  top_kernels?: Record<string, number>;
  peak_bytes?: number;
  matmul_shapes_tuned?: number;
  /** `--attention`: auto or the forced path. */
  attention?: string;
  /** The attention path the step's shape ran (tiled, rows or composed). */
  attention_path?: string;
  /** Hardware GPUs, auto: ms per forward + backward of each path when it was tuned. */
  attention_tuning?: Record<string, number>;
  /** GPU waits (mapAsync, onSubmittedWorkDone) of one step. */
  gpu_waits_per_step?: number;
  /** Command buffers submitted in one step. */
  submits_per_step?: number;
  /** GPU buffers created in one step (pool misses; 0 in steady state). */
  buffers_created_per_step?: number;
  /**
   * `--profile`: wall ms minus GPU ms (timestamp queries) of the profiled steps, the host's share
   * of a step (on a software adapter the "GPU" is the same CPU, so this means little there);
   * null without a profile.
   */
  host_ms_per_step?: number | null;
  /** `--profile`: summed GPU time of one step's dispatches (timestamp queries), ms. */
  gpu_ms_per_step?: number;
  /** `--profile`: wall ms per step of the profiled steps (a pass per dispatch). */
  profile_wall_ms_per_step?: number;
  /** `--profile`: GPU ms per step by kernel family (see `kernelFamily`), longest first. */
  gpu_ms_by_kernel?: Record<string, number>;
  /** `--profile`: why no profile was taken. */
  profile_error?: string;
}

/** Steps timed per kernel by `--profile`. */
const PROFILE_STEPS = 2;

/**
 * A kernel key's family for the profile: the key up to its first `:`, with the matmul variant
 * and transpositions kept (`matmul:t128db:…` differ by shape bucket only after those).
 */
function kernelFamily(key: string): string {
  const parts = key.split(":");
  return parts[0] === "matmul" ? parts.slice(0, 2).join(":") : parts[0];
}
const rows: Row[] = [];

// 1. LoRA layer forward + backward, r = 8, x: [1024, 768] (a GPT-2-small linear at 8 × 128 tokens)
if (parts.includes("layer")) {
  for (const dev of backends) {
    for (const base of ["f32", "nf4"] as const) {
      const lin = Linear.init(768, 768, { device: dev, rng: new Rng(1) });
      const b = base === "f32" ? lin : await QuantLinear.fromLinear(lin, { format: "nf4" });
      const l = new LoraLinear(b, { r: 8, alpha: 16, seed: 1, dropout: 0 });
      const x = Tensor.randn([1024, 768], { device: dev, seed: 2 });
      const ms = await time(() =>
        scope(async () => {
          const tape = new Tape();
          tape.watch(x, l.loraA, l.loraB);
          const loss = tape.run(() => sum(l.forward(x).reshape([1024 * 768]), 0));
          const g = tape.backward(loss);
          await g.get(l.loraB)!.toArray();
        })
      );
      rows.push({
        bench: `lora-layer fwd+bwd 768x768 r8 ${base} base, 1024 tokens`,
        backend: dev.kind,
        adapter: dev.description,
        ms,
        tokens_per_s: 1024 / (ms / 1000),
      });
      x.dispose();
    }
  }
}

// 2. Training steps (trainStep: forward, backward, clipping and AdamW on the device, one readback)
// in tokens/s.
const shapes: [string, GPTConfig, (dev: Backend) => [number, number]][] = [];
if (parts.includes("shipped")) {
  shapes.push([
    "shipped base (1.85 M)",
    { vocab_size: 257, n_positions: 128, n_embd: 192, n_layer: 4, n_head: 6 },
    () => [8, 128],
  ]);
}
if (parts.includes("gpt2")) {
  const hardware = (dev: Backend) => dev instanceof WebGpuBackend && !dev.engine.isSoftware;
  shapes.push([
    gpt2Layers === 12 && gpt2Vocab === 50257
      ? "GPT-2 small (124 M)"
      : `GPT-2 small shape, ${gpt2Layers} layers, vocab ${gpt2Vocab}`,
    { vocab_size: gpt2Vocab, n_positions: 1024, n_embd: 768, n_layer: gpt2Layers, n_head: 12 },
    (dev) => (batchArg as [number, number]) ?? (hardware(dev) ? [8, 1024] : [1, 32]),
  ]);
}
for (const dev of backends) {
  const engine = dev instanceof WebGpuBackend ? dev.engine : null;
  for (const [name, cfg, batchOf] of shapes) {
    const [B, T] = batchOf(dev);
    for (const method of methods) {
      engine?.trim();
      if (engine) engine.peakBytes = engine.liveBytes;
      const model = GPT.init(cfg, { device: dev, seed: 1 });
      const pm = await preparePeft(model, {
        method,
        dropout: 0,
        ...(method === "full" ? {} : { targets: ["c_attn", "c_proj", "c_fc"] }),
      });
      const counts = pm.counts();
      const opt = new AdamW(pm.trainable, { lr: 1e-4, weightDecay: 0 });
      const rng = new Rng(3);
      const ids = Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
      const x = Int32Array.from(ids);
      const y = Int32Array.from(ids, (t) => (t + 1) % cfg.vocab_size);
      let dispatches = 0, waits = 0, submits = 0, created = 0;
      let byKernel = new Map<string, number>();
      let tuned = 0;
      const attShape = { B, nHead: cfg.n_head, T, hd: cfg.n_embd / cfg.n_head };
      let attTuning: Record<string, number> | undefined;
      // As `deno task train` does: on a hardware GPU, time the matmul variants on the products of
      // the warm-up step (bit-identical results; speed only), and the attention paths of its shape.
      const tune = dev instanceof WebGpuBackend && !dev.engine.isSoftware
        ? async () => {
          tuned = (await dev.tuneMatmul(dev.seenMatmulShapes())).length;
          if (values.attention === "auto") {
            const r = (await tuneAttention(dev, [attShape]))[0];
            if (r) attTuning = r.ms as Record<string, number>;
          }
        }
        : undefined;
      const batch = { x, y, batchSize: B, seqLen: T, starts: new Int32Array(B) };
      const step = async () => {
        const d0 = engine?.dispatches ?? 0, w0 = engine?.waits ?? 0, s0 = engine?.submits ?? 0;
        const c0 = engine?.buffersCreated ?? 0;
        const k0 = new Map(engine?.dispatchesByKernel ?? []);
        await trainStep(model, pm.trainable.values(), opt, [batch], { lr: 1e-4, maxNorm: 1 });
        if (engine) {
          dispatches = engine.dispatches - d0;
          waits = engine.waits - w0;
          submits = engine.submits - s0;
          created = engine.buffersCreated - c0;
          byKernel = new Map(
            [...engine.dispatchesByKernel].map(([k, v]) => [k, v - (k0.get(k) ?? 0)]),
          );
        }
      };
      const ms = await time(step, tune);
      // GPU time per kernel family over PROFILE_STEPS more steps (a pass per dispatch while
      // profiling, so these are measured apart from the timing above).
      let profile: Record<string, number> | undefined;
      let profileMs: number | undefined;
      let profileWallMs: number | undefined;
      let profileError: string | undefined;
      if (values.profile && engine?.hasTimestamps) {
        // The timed numbers above are kept even if profiling fails on this adapter.
        try {
          engine.startProfile();
          const t0 = performance.now();
          for (let i = 0; i < PROFILE_STEPS; i++) await step();
          profileWallMs = (performance.now() - t0) / PROFILE_STEPS;
          const times = await engine.stopProfile();
          const fam = new Map<string, number>();
          for (const t of times) {
            const f = kernelFamily(t.key);
            fam.set(f, (fam.get(f) ?? 0) + t.ms / PROFILE_STEPS);
          }
          profile = Object.fromEntries([...fam].sort((a, b) => b[1] - a[1]));
          profileMs = [...fam.values()].reduce((a, b) => a + b, 0);
        } catch (e) {
          profileError = (e as Error).message;
          console.error(`bench: profiling failed: ${profileError}`);
          await engine.stopProfile().catch(() => {});
        }
      } else if (values.profile && engine) {
        profileError = "the device has no timestamp-query";
      }
      const top = [...byKernel].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, 12);
      rows.push({
        bench: `train step ${name} ${method} ${B}x${T}`,
        backend: dev.kind,
        adapter: dev.description,
        ms,
        tokens_per_s: (B * T) / (ms / 1000),
        model: name,
        method,
        attention: values.attention,
        attention_path: attentionPath(dev, attShape),
        ...(attTuning ? { attention_tuning: attTuning } : {}),
        batch: B,
        context: T,
        targets: method === "full" ? ["all parameters"] : pm.config.targets,
        lora_layers: pm.loraLayers.size,
        trainable_params: counts.trainable,
        total_params: counts.total,
        ...(engine
          ? {
            matmul_shapes_tuned: tuned,
            dispatches_per_step: dispatches,
            gpu_waits_per_step: waits,
            submits_per_step: submits,
            buffers_created_per_step: created,
            host_ms_per_step: profileMs !== undefined && profileWallMs !== undefined
              ? profileWallMs - profileMs
              : null,
            top_kernels: Object.fromEntries(top),
            peak_bytes: engine.peakBytes,
            ...(profile
              ? {
                gpu_ms_per_step: profileMs,
                profile_wall_ms_per_step: profileWallMs,
                gpu_ms_by_kernel: profile,
              }
              : {}),
            ...(profileError ? { profile_error: profileError } : {}),
          }
          : {}),
      });
      opt.dispose();
      model.dispose();
    }
  }
}

if (values.json) {
  console.log(
    JSON.stringify(
      { bench: "train_step", deno: Deno.version.deno, date: new Date().toISOString(), rows },
      null,
      2,
    ),
  );
} else {
  console.log("training benchmarks (ms per call; tokens/s; WebGPU: dispatches/step, peak MiB)");
  for (const r of rows) {
    const gpu = r.dispatches_per_step !== undefined
      ? ` ${String(r.dispatches_per_step).padStart(6)} disp ${
        ((r.peak_bytes ?? 0) / 2 ** 20).toFixed(0).padStart(7)
      } MiB, ${r.gpu_waits_per_step} wait ${r.submits_per_step} submits ${r.buffers_created_per_step} new buffers${
        r.host_ms_per_step != null ? `, host ${r.host_ms_per_step.toFixed(1)} ms` : ""
      }`
      : "";
    const att = r.attention_path ? ` att ${r.attention_path}` : "";
    const tr = r.trainable_params !== undefined ? ` ${r.trainable_params} trainable` : "";
    console.log(
      `${r.bench.padEnd(58)} ${r.backend.padEnd(7)} ${r.ms.toFixed(1).padStart(9)} ms ${
        Math.round(r.tokens_per_s ?? 0).toString().padStart(8)
      } tok/s${att}${gpu}${tr}`,
    );
    if (r.attention_tuning) {
      const t = Object.entries(r.attention_tuning).map(([k, v]) => `${k} ${v.toFixed(2)} ms`);
      console.log(`  attention tuned (fwd+bwd): ${t.join(", ")}`);
    }
    if (r.gpu_ms_by_kernel) {
      const tot = r.gpu_ms_per_step!;
      console.log(`  GPU time per step ${tot.toFixed(1)} ms by kernel (timestamp queries):`);
      for (const [k, v] of Object.entries(r.gpu_ms_by_kernel)) {
        if (v / tot < 0.005) continue;
        console.log(
          `    ${k.padEnd(28)} ${v.toFixed(2).padStart(9)} ms ${
            (100 * v / tot).toFixed(1).padStart(5)
          } %`,
        );
      }
    }
  }
  for (const dev of backends) console.log(`  ${dev.kind}: ${dev.description}`);
}
