/**
 * Real-scale benchmark (issue 16): writes a random Llama-shaped Hugging Face checkpoint itself
 * (bf16, sharded safetensors with model.safetensors.index.json, config.json, GPT-2 BPE tokenizer
 * files; weights from a seeded generator), then measures in one process what a QLoRA user waits
 * for: loading + quantizing it (NF4 + double quantization by default), training tokens/s over a
 * few QLoRA steps (r = 8, α = 16, every block linear; AdamW), decoding tokens/s (greedy `generate`
 * with the key/value cache, LoRA on) and peak memory.
 *
 * Memory: the peak RSS of each phase (load, training, decoding) from /proc/<pid>/status (VmHWM,
 * the kernel's high-water mark, reset at each phase through /proc/<pid>/clear_refs; both through
 * `sh`, as Deno opens /proc/self only with --allow-all), or `Deno.memoryUsage().rss` sampled every
 * 50 ms where there is no /proc. The checkpoint is written by a child process, so the load is the
 * first thing this one's high-water mark sees. The model's size is the bytes of its weights as
 * stored (f32 tensors + packed quantized weights).
 *
 * Shapes (`--config`): `tiny` (64 wide, 2 layers: a smoke test of the benchmark), `152m` (768
 * wide, 12 layers, 12 heads, 4 KV heads, SwiGLU 3072, vocab 32000, untied head: 153 M parameters,
 * the issue's "152 M" run), `tinyllama` (TinyLlama-1.1B:
 * 2048 wide, 22 layers, 32 heads, 4 KV heads, 5632, vocab 32000: 1.10 B), `7b` (Llama-2-7B: 4096
 * wide, 32 layers, 32 heads, 11008, vocab 32000: 6.7 B, 13.5 GB of bf16; for a GPU machine).
 *
 * Flags: `--config tiny|152m|tinyllama|7b`, `--dir DIR` (where the checkpoint goes; reused when it
 * holds the same config and seed, so a second run skips writing; default a temp folder, removed
 * at the end), `--keep` (keep the temp folder), `--seed 1`, `--shard-mb 256` (shard size),
 * `--quant nf4|fp4|int8|f16|none` (base storage; none = f32 weights and LoRA, for the streaming
 * comparison), `--steps 3` (QLoRA steps; the first is a warm-up, reported apart; 0 = no training),
 * `--batch 1 --ctx 128`, `--decode 32` (tokens to decode after a 16-token prompt; 0 = none),
 * `--grad-checkpoint auto|on|off` (activation checkpointing in the steps; auto as
 * `deno task train`: on from 500 M parameters),
 * `--backend cpu|webgpu`, `--json`.
 *
 * PyTorch: where `python3 -c "import torch"` works, bench/scale_torch.py runs on the same folder
 * (transformers + peft: load, LoRA steps on an fp32 base, or QLoRA with bitsandbytes on CUDA,
 * decoding with transformers' cache) and its figures are printed beside; elsewhere the output says
 * PyTorch was not measured. (scale_torch.py has not run yet: no machine so far had PyTorch.)
 *
 * Run: `deno run --allow-read --allow-write --allow-env --allow-run --allow-ffi=/usr/lib
 * --allow-sys=systemMemoryInfo bench/scale.ts --config 152m`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Backend, getDevice, Rng } from "../lib/mod.ts";
import { loadHfModel, type LoadProgress } from "../lib/io/hf_load.ts";
import { BASE_QUANTS, type BaseQuant } from "../lib/quant/formats/registry.ts";
import { preparePeft } from "../lib/peft/apply.ts";
import { LoraLinear } from "../lib/peft/lora.ts";
import { QuantLinear } from "../lib/nn/quant_linear.ts";
import { AdamW } from "../lib/optim/optimizers.ts";
import { trainStep } from "../lib/train/step.ts";
import { generate } from "../lib/nn/generate.ts";
import { gradCheckpointFor } from "../lib/train/args.ts";
import { writeGpt2TokenizerFiles } from "../tests/hf/fixtures.ts";

/** Llama shapes by name (Hugging Face LlamaConfig fields). */
export const SCALE_CONFIGS: Record<string, Record<string, number | boolean>> = {
  tiny: { // smoke tests of the benchmark itself
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 128,
    vocab_size: 512,
    max_position_embeddings: 256,
    tie_word_embeddings: false,
  },
  "152m": {
    hidden_size: 768,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    num_key_value_heads: 4,
    intermediate_size: 3072,
    vocab_size: 32000,
    max_position_embeddings: 2048,
    tie_word_embeddings: false,
  },
  tinyllama: {
    hidden_size: 2048,
    num_hidden_layers: 22,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    intermediate_size: 5632,
    vocab_size: 32000,
    max_position_embeddings: 2048,
    tie_word_embeddings: false,
  },
  "7b": {
    hidden_size: 4096,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 32,
    intermediate_size: 11008,
    vocab_size: 32000,
    max_position_embeddings: 4096,
    tie_word_embeddings: false,
  },
};

/** config.json of a shape, as transformers writes a LlamaConfig (eos/bos: the GPT-2 files' eot). */
export function scaleConfigJson(name: string): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 267,
    eos_token_id: 267,
    hidden_act: "silu",
    initializer_range: 0.02,
    mlp_bias: false,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 10000.0,
    torch_dtype: "bfloat16",
    ...SCALE_CONFIGS[name],
  };
}

/** The stored tensors of a LlamaForCausalLM of `cfg`, in model order, with their init std. */
export function llamaTensorList(
  cfg: Record<string, unknown>,
): { name: string; shape: number[]; std: number; mean: number }[] {
  const C = cfg.hidden_size as number, I = cfg.intermediate_size as number;
  const V = cfg.vocab_size as number, nh = cfg.num_attention_heads as number;
  const nkv = (cfg.num_key_value_heads as number) ?? nh, hd = C / nh;
  const out: { name: string; shape: number[]; std: number; mean: number }[] = [];
  const put = (name: string, shape: number[], std = 0.02, mean = 0) =>
    out.push({ name, shape, std, mean });
  put("model.embed_tokens.weight", [V, C]);
  for (let i = 0; i < (cfg.num_hidden_layers as number); i++) {
    const p = `model.layers.${i}`;
    put(`${p}.input_layernorm.weight`, [C], 0.05, 1);
    put(`${p}.self_attn.q_proj.weight`, [nh * hd, C]);
    put(`${p}.self_attn.k_proj.weight`, [nkv * hd, C]);
    put(`${p}.self_attn.v_proj.weight`, [nkv * hd, C]);
    put(`${p}.self_attn.o_proj.weight`, [C, nh * hd]);
    put(`${p}.post_attention_layernorm.weight`, [C], 0.05, 1);
    put(`${p}.mlp.gate_proj.weight`, [I, C]);
    put(`${p}.mlp.up_proj.weight`, [I, C]);
    put(`${p}.mlp.down_proj.weight`, [C, I]);
  }
  put("model.norm.weight", [C], 0.05, 1);
  if (!cfg.tie_word_embeddings) put("lm_head.weight", [V, C]);
  return out;
}

/**
 * bf16 bits of `n` draws uniform with the given mean and standard deviation (uniform, not normal:
 * ten times cheaper, and the loader and the quantizer do not care), from `rng`.
 */
function randomBf16(n: number, std: number, mean: number, rng: Rng): Uint16Array {
  const out = new Uint16Array(n);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const a = std * Math.sqrt(3) * 2 / 4294967296, b = mean - std * Math.sqrt(3);
  for (let i = 0; i < n; i++) {
    f[0] = rng.nextU32() * a + b;
    out[i] = (u[0] + 0x8000) >>> 16; // round to nearest (ties away), fine for random data
  }
  return out;
}

/**
 * Writes a random Llama checkpoint into `dir`: config.json, bf16 shards of at most `shardBytes`
 * (each written tensor by tensor, never the whole model in memory), model.safetensors.index.json,
 * GPT-2 BPE files (vocab.json + merges.txt) and scale.json (what was written, for reuse).
 * Returns the bytes of weights written.
 */
export async function writeRandomLlama(
  dir: string,
  name: string,
  seed: number,
  shardBytes: number,
): Promise<number> {
  const cfg = scaleConfigJson(name);
  const tensors = llamaTensorList(cfg);
  const bytesOf = (t: { shape: number[] }) => 2 * t.shape.reduce((a, b) => a * b, 1);
  const shards: (typeof tensors)[] = [[]];
  let cur = 0;
  for (const t of tensors) {
    if (cur > 0 && cur + bytesOf(t) > shardBytes) {
      shards.push([]);
      cur = 0;
    }
    shards[shards.length - 1].push(t);
    cur += bytesOf(t);
  }
  await Deno.mkdir(dir, { recursive: true });
  const rng = new Rng(seed);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards.length; s++) {
    const file = `model-${String(s + 1).padStart(5, "0")}-of-${
      String(shards.length).padStart(5, "0")
    }.safetensors`;
    // Header first (offsets follow from the shapes), then the tensors one at a time.
    const parts = [`"__metadata__":{"format":"pt"}`];
    let off = 0;
    for (const t of shards[s]) {
      const end = off + bytesOf(t);
      parts.push(
        `${JSON.stringify(t.name)}:{"dtype":"BF16","shape":[${t.shape.join(",")}],` +
          `"data_offsets":[${off},${end}]}`,
      );
      off = end;
      weightMap[t.name] = file;
    }
    let header = new TextEncoder().encode(`{${parts.join(",")}}`);
    const padded = Math.ceil(header.length / 8) * 8;
    if (padded !== header.length) {
      const p = new Uint8Array(padded).fill(0x20);
      p.set(header);
      header = p;
    }
    const f = await Deno.open(`${dir}/${file}`, { write: true, create: true, truncate: true });
    try {
      const len = new Uint8Array(8);
      new DataView(len.buffer).setBigUint64(0, BigInt(padded), true);
      await writeAll(f, len);
      await writeAll(f, header);
      for (const t of shards[s]) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        const bits = randomBf16(n, t.std, t.mean, rng);
        await writeAll(f, new Uint8Array(bits.buffer));
        total += bits.byteLength;
      }
    } finally {
      f.close();
    }
  }
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
  );
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg, null, 2));
  await writeGpt2TokenizerFiles(dir);
  await Deno.writeTextFile(
    `${dir}/scale.json`,
    JSON.stringify({ config: name, seed, shardBytes, bytes: total }),
  );
  return total;
}

async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let w = 0;
  while (w < bytes.length) w += await f.write(bytes.subarray(w));
}

// ---------------------------------------------------------------------------------------------
// Memory

/**
 * Peak RSS: the kernel's high-water mark (VmHWM of /proc/<pid>/status), reset at the start of
 * each phase through /proc/<pid>/clear_refs. Deno opens /proc/self only with --allow-all, so both
 * go through `sh` (--allow-run). Where that fails (no /proc: macOS), `Deno.memoryUsage().rss`
 * sampled every 50 ms stands in (the sampler runs between awaits, so it can miss a short peak
 * inside synchronous work).
 */
class Memory {
  private sampled = 0;
  private timer: ReturnType<typeof setInterval>;

  private constructor(readonly proc: boolean, readonly canReset: boolean) {
    this.sampled = Deno.memoryUsage().rss;
    this.timer = setInterval(() => {
      this.sampled = Math.max(this.sampled, Deno.memoryUsage().rss);
    }, 50);
  }

  static async open(): Promise<Memory> {
    const proc = Number.isFinite(await hwmOf(Deno.pid));
    return new Memory(proc, proc && await sh(`echo 5 > /proc/${Deno.pid}/clear_refs`) !== null);
  }

  /** Current RSS in bytes. */
  rss(): number {
    return Deno.memoryUsage().rss;
  }

  /** The peak of the phase: VmHWM where /proc works, else the largest sampled RSS. */
  async peak(): Promise<number> {
    this.sampled = Math.max(this.sampled, this.rss());
    const h = this.proc ? await hwmOf(Deno.pid) : NaN;
    return Number.isFinite(h) ? Math.max(h, this.sampled) : this.sampled;
  }

  /** Starts a new phase. */
  async reset(): Promise<void> {
    this.sampled = this.rss();
    if (this.canReset) await sh(`echo 5 > /proc/${Deno.pid}/clear_refs`);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** A shell command's stdout, or null when it cannot run or fails. */
async function sh(cmd: string): Promise<string | null> {
  try {
    const r = await new Deno.Command("sh", { args: ["-c", cmd], stdout: "piped", stderr: "null" })
      .output();
    return r.success ? new TextDecoder().decode(r.stdout) : null;
  } catch {
    return null;
  }
}

/** VmHWM of a process in bytes, NaN where /proc cannot be read. */
async function hwmOf(pid: number): Promise<number> {
  const out = await sh(`grep VmHWM /proc/${pid}/status`);
  const m = out ? /VmHWM:\s+(\d+) kB/.exec(out) : null;
  return m ? Number(m[1]) * 1024 : NaN;
}

// ---------------------------------------------------------------------------------------------
// The run

if (import.meta.main) await main();

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      config: { type: "string", default: "152m" },
      dir: { type: "string" },
      keep: { type: "boolean", default: false },
      seed: { type: "string", default: "1" },
      "shard-mb": { type: "string", default: "256" },
      quant: { type: "string", default: "nf4" },
      steps: { type: "string", default: "3" },
      batch: { type: "string", default: "1" },
      ctx: { type: "string", default: "128" },
      decode: { type: "string", default: "32" },
      "grad-checkpoint": { type: "string", default: "auto" },
      backend: { type: "string", default: "cpu" },
      json: { type: "boolean", default: false },
      "write-only": { type: "boolean", default: false },
    },
  });
  const name = values.config;
  const seed = Number(values.seed), shardMb = Number(values["shard-mb"]);
  const steps = Number(values.steps), B = Number(values.batch), T = Number(values.ctx);
  const decode = Number(values.decode);
  const quant = values.quant as BaseQuant;
  const ckFlag = values["grad-checkpoint"];
  if (!["auto", "on", "off"].includes(ckFlag)) {
    throw new Error(`--grad-checkpoint ${ckFlag}: expected auto, on or off`);
  }
  const ints = [seed, steps, B, T, decode];
  if (
    !SCALE_CONFIGS[name] || !(shardMb > 0) || !BASE_QUANTS.includes(quant) ||
    ints.some((v) => !Number.isInteger(v) || v < 0) || B < 1 || T < 1 ||
    !["cpu", "webgpu"].includes(values.backend)
  ) {
    console.error(
      `scale: --config ${Object.keys(SCALE_CONFIGS).join("|")}, --quant ${
        BASE_QUANTS.join("|")
      }, ` +
        "--shard-mb a positive number, --steps/--decode/--seed integers ≥ 0, --batch/--ctx ≥ 1, " +
        "--backend cpu|webgpu",
    );
    Deno.exit(2);
  }
  const say = (s: string) => values.json ? console.error(s) : console.log(s);
  if (values["write-only"]) { // the child process that writes the checkpoint (see below)
    await writeRandomLlama(values.dir!, name, seed, shardMb * 2 ** 20);
    return;
  }
  const mem = await Memory.open();
  const rss0 = mem.rss();
  const dev: Backend = await getDevice({
    backend: values.backend as "cpu" | "webgpu",
    quiet: true,
  });

  // 1. The checkpoint (reused when --dir holds the same one).
  const dir = values.dir ?? await Deno.makeTempDir({ prefix: `loralab-scale-${name}-` });
  let written = 0, writeS = 0;
  let reuse = false;
  try {
    const s = JSON.parse(await Deno.readTextFile(`${dir}/scale.json`));
    reuse = s.config === name && s.seed === seed;
  } catch {
    reuse = false;
  }
  if (!reuse) {
    say(`writing a random ${name} checkpoint (bf16, seed ${seed}) to ${dir} …`);
    // In a child process, so that this one's high-water mark starts with the load.
    const t = performance.now();
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        `--allow-write=${dir}`,
        new URL(import.meta.url).pathname,
        "--write-only",
        "--config",
        name,
        "--seed",
        String(seed),
        "--shard-mb",
        String(shardMb),
        "--dir",
        dir,
      ],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!r.success) throw new Error(`writing the checkpoint failed (exit ${r.code})`);
    writeS = (performance.now() - t) / 1000;
  } else say(`reusing the ${name} checkpoint in ${dir}`);
  written = JSON.parse(await Deno.readTextFile(`${dir}/scale.json`)).bytes;
  const shards = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".safetensors")).length;

  // 2. Load + quantize.
  await mem.reset();
  const rssBeforeLoad = mem.rss();
  let last: LoadProgress | null = null;
  let lastSay = performance.now();
  const t0 = performance.now();
  const loaded = await loadHfModel(dir, dev, {
    quantize: quant,
    onProgress: (p) => {
      last = p;
      if (performance.now() - lastSay > 10_000) {
        lastSay = performance.now();
        say(`  loading: ${p.tensors}/${p.totalTensors} tensors, ${p.seconds.toFixed(0)} s`);
      }
    },
  });
  const loadS = (performance.now() - t0) / 1000;
  const lp = last as LoadProgress | null;
  const model = loaded.model;
  let weightBytes = 0, params = 0;
  for (const t of model.namedParameters().values()) {
    weightBytes += t.bytes;
    params += t.size;
  }
  for (const [, lin] of model.linears()) {
    const b = lin instanceof LoraLinear ? lin.base : lin;
    if (b instanceof QuantLinear) {
      weightBytes += b.weight.bytes;
      params += b.weight.numel;
    }
  }
  const loadPeak = await mem.peak();
  const rssAfterLoad = mem.rss();

  // 3. QLoRA steps.
  await mem.reset();
  const pm = await preparePeft(model, {
    method: quant === "none" ? "lora" : "qlora",
    quant,
    r: 8,
    alpha: 16,
    dropout: 0,
    seed,
  });
  // Activation checkpointing as `deno task train` does it (auto: on from 500 M parameters).
  const ck = gradCheckpointFor(
    { gradCheckpoint: ckFlag === "auto" ? null : ckFlag === "on" },
    params,
  );
  if (ck.on) model.gradCheckpointing = { rngs: [] };
  const opt = new AdamW(pm.trainable, { lr: 1e-4, weightDecay: 0 });
  const rng = new Rng(seed + 1);
  const V = loaded.tokenizer.vocabSize;
  const stepMs: number[] = [];
  let loss = NaN;
  for (let s = 0; s < steps; s++) {
    const ids = Int32Array.from({ length: B * (T + 1) }, () => rng.int(V));
    const x = new Int32Array(B * T), y = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      x.set(ids.subarray(b * (T + 1), b * (T + 1) + T), b * T);
      y.set(ids.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
    }
    const t = performance.now();
    const r = await trainStep(model, pm.trainable.values(), opt, [
      { x, y, batchSize: B, seqLen: T, starts: new Int32Array(B) },
    ], { lr: 1e-4, maxNorm: 1 });
    stepMs.push(performance.now() - t);
    loss = r.loss;
    say(`  step ${s + 1}/${steps}: ${(stepMs[s] / 1000).toFixed(1)} s, loss ${loss.toFixed(3)}`);
  }
  const timed = stepMs.length > 1 ? stepMs.slice(1) : stepMs;
  const stepS = timed.length ? timed.reduce((a, b) => a + b, 0) / timed.length / 1000 : NaN;
  const trainPeak = await mem.peak();
  const devicePeak = dev.deviceMemory?.().peak ?? null; // a GPU's buffers (training included)
  opt.dispose();

  // 4. Decoding: greedy, 16-token prompt, the KV cache (model.forwardCached), LoRA on.
  await mem.reset();
  pm.setTraining(false);
  let prefillS = NaN, decodeTps = NaN;
  if (decode > 0) {
    const prompt = Array.from({ length: 16 }, () => rng.int(V));
    const t = performance.now();
    let tFirst = NaN;
    const out = await generate(model, prompt, {
      maxTokens: decode,
      temperature: 0,
      vocabSize: V,
      onToken: (n) => {
        if (n === 1) tFirst = performance.now();
      },
    });
    const end = performance.now();
    prefillS = (tFirst - t) / 1000;
    decodeTps = out.length > 1 ? (out.length - 1) / ((end - tFirst) / 1000) : NaN;
  }
  const decodePeak = await mem.peak();
  mem.stop();

  // 5. PyTorch beside it, where it is installed.
  const torch = await torchRows(dir, { steps, B, T, decode });

  const result = {
    bench: "scale",
    config: name,
    shape: SCALE_CONFIGS[name],
    backend: dev.kind,
    adapter: dev.description,
    deno: Deno.version.deno,
    date: new Date().toISOString(),
    checkpoint: { dir, shards, bytes: written, dtype: "BF16", write_s: reuse ? null : writeS },
    quant,
    params,
    load: {
      seconds: loadS,
      read_s: lp?.readSeconds ?? NaN,
      quantize_s: lp?.quantizeSeconds ?? NaN,
      other_s: loadS - (lp?.readSeconds ?? 0) - (lp?.quantizeSeconds ?? 0),
      model_bytes: weightBytes,
      rss_before: rssBeforeLoad,
      rss_after: rssAfterLoad,
      peak_rss: loadPeak,
      peak_over_model: loadPeak - rssBeforeLoad - weightBytes,
    },
    train: {
      method: quant === "none" ? "lora" : "qlora",
      steps,
      batch: B,
      ctx: T,
      first_step_s: stepMs.length ? stepMs[0] / 1000 : null,
      step_s: stepS,
      tokens_per_s: (B * T) / stepS,
      loss,
      trainable: pm.counts().trainable,
      grad_checkpoint: ck.on,
      peak_rss: trainPeak,
      peak_device_bytes: devicePeak,
    },
    decode: {
      tokens: decode,
      prompt: 16,
      prefill_s: prefillS,
      tokens_per_s: decodeTps,
      kv_cache: model.forwardCached !== undefined,
      peak_rss: decodePeak,
    },
    rss_at_start: rss0,
    peak_rss_is: mem.canReset
      ? "VmHWM per phase (reset through /proc/<pid>/clear_refs)"
      : mem.proc
      ? "VmHWM since the process started (the load is its first phase)"
      : "Deno.memoryUsage().rss sampled every 50 ms",
    torch,
  };
  model.dispose();
  if (!values.dir && !values.keep) await Deno.remove(dir, { recursive: true });

  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  const f = (v: number, d = 1) => Number.isFinite(v) ? v.toFixed(d) : "—";
  console.log(
    `\nscale: ${name} (${(params / 1e6).toFixed(0)} M parameters, ${shards} bf16 shards, ` +
      `${gb(written)}), ${quant} base, ${dev.kind} (${dev.description})`,
  );
  if (!reuse) console.log(`  checkpoint written in ${f(writeS)} s`);
  const rows: [string, string][] = [
    [
      "load + quantize",
      `${f(loadS)} s (read + bf16→f32 ${f(result.load.read_s)} s, quantize ${
        f(result.load.quantize_s)
      } s, the rest ${f(result.load.other_s)} s)`,
    ],
    [
      "model as stored",
      `${gb(weightBytes)}; RSS ${gb(rssBeforeLoad)} before load, ${gb(rssAfterLoad)} after, peak ${
        gb(loadPeak)
      } (peak − before − model = ${gb(result.load.peak_over_model)})`,
    ],
    [
      `train (${result.train.method})`,
      steps
        ? `${f((B * T) / stepS, 2)} tok/s (${B} × ${T}, ${
          f(stepS)
        } s/step over ${timed.length} step${timed.length > 1 ? "s" : ""}${
          stepMs.length > 1 ? `; first step ${f(stepMs[0] / 1000)} s` : ""
        }), peak RSS ${gb(trainPeak)}${
          devicePeak !== null ? `, peak device ${gb(devicePeak)}` : ""
        }${ck.on ? ", activations checkpointed" : ""}`
        : "not run (--steps 0)",
    ],
    [
      "decode (KV cache)",
      decode
        ? `${f(decodeTps, 2)} tok/s (${decode} tokens after a 16-token prompt, prefill ${
          f(prefillS, 2)
        } s), peak RSS ${gb(decodePeak)}`
        : "not run (--decode 0)",
    ],
    ["PyTorch", torch.note],
  ];
  for (const [k, v] of rows) console.log(`  ${k.padEnd(20)} ${v}`);
  console.log(`  (peak RSS: ${result.peak_rss_is})`);
}

/** PyTorch's figures for the same folder, or why there are none. */
async function torchRows(
  dir: string,
  o: { steps: number; B: number; T: number; decode: number },
): Promise<{ note: string; rows?: unknown }> {
  let ok = false;
  try {
    const r = await new Deno.Command("python3", {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    }).output();
    ok = r.success;
  } catch {
    ok = false;
  }
  if (!ok) return { note: 'not measured: python3 -c "import torch" fails on this machine' };
  const script = new URL("./scale_torch.py", import.meta.url).pathname;
  const r = await new Deno.Command("python3", {
    args: [
      script,
      dir,
      "--steps",
      String(o.steps),
      "--batch",
      String(o.B),
      "--ctx",
      String(o.T),
      "--decode",
      String(o.decode),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!r.success) return { note: `bench/scale_torch.py failed (exit ${r.code})` };
  const rows = JSON.parse(new TextDecoder().decode(r.stdout));
  return {
    note: `load ${rows.load_s?.toFixed(1)} s, train ${rows.train_tokens_per_s?.toFixed(2)} tok/s ` +
      `(${rows.method}), decode ${rows.decode_tokens_per_s?.toFixed(2)} tok/s, peak RSS ${
        (rows.peak_rss / 1e9).toFixed(2)
      } GB`,
    rows,
  };
}
