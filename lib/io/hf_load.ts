/**
 * Loading Hugging Face model folders: `config.json` plus `model.safetensors`, or sharded
 * `model-0000N-of-0000M.safetensors` listed by `model.safetensors.index.json`, of any registered
 * family (lib/models/registry.ts: GPT-2 `GPT2LMHeadModel` / `GPT2Model`, Llama
 * `LlamaForCausalLM` / `LlamaModel`), with F32, F16 or BF16 tensors, and the folder's tokenizer.
 * Nothing here names a family: config.json's family answers which tensors to expect, how stored
 * names map to its own, and how to build the model.
 *
 * Loading streams: shard headers are read first and every expected tensor is checked (present,
 * right shape, supported dtype, nothing unexpected) before any data is read; then one tensor at a
 * time is read from disk, converted to f32 and put on the device. With `quantize` the block
 * linears are quantized (NF4 with double quantization, FP4, int8 or f16) as they are read, so the
 * whole model never exists in f32 (on WebGPU the 4-bit formats are quantized by a kernel on the
 * device: `lib/quant/quantize_device.ts`). Each tensor's stored bytes and f32 copy are freed as
 * soon as the tensor is on the device (not left to the garbage collector, which lets big buffers
 * pile up), so peak host memory is the model as stored plus one tensor's bytes, its f32 copy and the
 * backend's copy of it (tests/hf/streaming.test.ts). `onProgress` reports each tensor, with the
 * time spent reading and quantizing.
 *
 * Checkpoints published already quantized by bitsandbytes (config.json `quantization_config`
 * with `load_in_4bit`; NF4 or FP4, with or without double quantization, see `bnb.ts`) load their
 * 4-bit linears straight into {@link QuantLinear}s, as stored (an integer repack of the codes,
 * no f32 copy); with `quantize: "none"` they are de-quantized into f32 Linears instead.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { loadFolderTokenizer } from "../data/tokenizer_files.ts";
import type { WeightLoader } from "../models/architecture.ts";
import { archOf, type ModelConfig } from "../models/registry.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { Linear, type LinearLike, type WeightLayout } from "../nn/linear.ts";
import { type BaseQuant, QuantLinear } from "../nn/quant_linear.ts";
import { toDevice } from "../quant/device_weight.ts";
import { quantize } from "../quant/quantize.ts";
import { quantizeToDevice } from "../quant/quantize_device.ts";
import { Tensor } from "../tensor.ts";
import {
  BNB_SUFFIXES,
  type BnbConfig,
  bnbConfigFromHf,
  bnbToBlockwise,
  isBnbCompanion,
} from "./bnb.ts";
import { checkConfigFitsFiles, eosTokenId, type HfArch, readHfConfig } from "./hf_config.ts";
import { HfWeights } from "./hf_weights.ts";
import { type SafetensorsTensor, toF32 } from "./safetensors.ts";

/** Options of {@link loadHfWeights} and {@link loadHfModel}. */
export interface HfLoadOptions {
  /**
   * Store the block linears quantized as they are read (`nf4`/`fp4` blockwise, `int8` per row,
   * `f16`), frozen in {@link QuantLinear}s. Default `none` (f32 {@link Linear}s). A bitsandbytes
   * 4-bit checkpoint keeps its stored format with `nf4`/`fp4` (`preparePeft` then checks it is
   * the one asked for), is de-quantized to f32 with `none`, and refuses `int8`/`f16`.
   */
  quantize?: BaseQuant;
  /** 4-bit block size. Default 64. (A bitsandbytes checkpoint keeps its own.) */
  blockSize?: number;
  /** Double quantization of the 4-bit constants. Default true. (Ditto.) */
  doubleQuant?: boolean;
  /**
   * Called after each tensor is on the device (read, converted, quantized if asked), for
   * progress and timing: see {@link LoadProgress}. Loading a big checkpoint takes minutes.
   */
  onProgress?: (p: LoadProgress) => void;
}

/** How far a load is, after each tensor (see {@link HfLoadOptions.onProgress}). */
export interface LoadProgress {
  /** Parameters loaded so far (a linear's weight and bias count as two). */
  tensors: number;
  /** Parameters to load in all. */
  totalTensors: number;
  /** Stored bytes read so far (a bitsandbytes weight's quant_state included). */
  bytes: number;
  /** Stored bytes of every parameter to load. */
  totalBytes: number;
  /** Seconds spent reading stored bytes from disk and converting them to f32 (or unpacking). */
  readSeconds: number;
  /**
   * Seconds spent quantizing and putting the quantized weights on the device (the transposition
   * of [in, out] weights included; on WebGPU the 4-bit formats are quantized on the device).
   */
  quantizeSeconds: number;
  /** Seconds since the load began (config, headers, device uploads, model building included). */
  seconds: number;
}

/** What {@link loadHfWeights} returns. */
export interface HfLoadedWeights {
  /** The model on the requested backend. */
  model: CausalLM;
  /** The family's name (`gpt2`, `llama`: see lib/models/registry.ts). */
  arch: HfArch;
  /** Its parsed config. */
  config: ModelConfig;
  /** The (first) safetensors file's `__metadata__`. */
  metadata: Record<string, string>;
  /** config.json's eos_token_id (first one if a list), if any. */
  eosTokenId?: number;
}

/** What {@link loadHfModel} returns: the weights and the folder's tokenizer. */
export interface HfLoadedModel extends HfLoadedWeights {
  /** The folder's tokenizer. */
  tokenizer: Tokenizer;
}

/** One expected tensor: its canonical (model) name, stored name and shape. */
interface Expect {
  stored: string;
  shape: number[];
}

/** Maps canonical names to stored ones, ignoring known buffers; errors name every problem. */
function plan(
  w: HfWeights,
  expected: Map<string, number[]>,
  canonical: (stored: string) => string | null,
  what: string,
  bnb: BnbConfig | null,
): Map<string, Expect> {
  const found = new Map<string, Expect>();
  const unexpected: string[] = [];
  for (const stored of w.names()) {
    if (isBnbCompanion(stored)) {
      if (!bnb) {
        throw new Error(
          `${w.dir}: ${stored} is a bitsandbytes tensor, but config.json has no quantization_config`,
        );
      }
      continue; // read with its weight (Loader.linear)
    }
    const c = canonical(stored);
    if (c === null) continue; // a known buffer or tied copy
    if (!expected.has(c)) {
      unexpected.push(stored);
      continue;
    }
    if (found.has(c)) {
      throw new Error(`${w.dir}: ${c} is stored twice (${found.get(c)!.stored} and ${stored})`);
    }
    found.set(c, { stored, shape: w.info(stored).shape });
  }
  const missing = [...expected.keys()].filter((n) => !found.has(n));
  if (missing.length) {
    throw new Error(
      `${w.dir}: missing tensor${missing.length > 1 ? "s" : ""} ${missing.slice(0, 5).join(", ")}` +
        `${missing.length > 5 ? ` and ${missing.length - 5} more` : ""} (${what})`,
    );
  }
  if (unexpected.length) {
    throw new Error(
      `${w.dir}: unexpected tensor${unexpected.length > 1 ? "s" : ""} ` +
        `${unexpected.slice(0, 5).join(", ")}` +
        `${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ""} ` +
        `(not a parameter of ${what} with this config.json)`,
    );
  }
  for (const [name, want] of expected) { // in model order: the first problem named is the lowest
    const e = found.get(name)!;
    if (bnb && isBnbWeight(w, e.stored)) continue; // its quant_state's shape is checked on read
    if (e.shape.join(",") !== want.join(",")) {
      throw new Error(
        `${w.dir}: ${e.stored} is [${e.shape.join(", ")}], expected [${
          want.join(", ")
        }] for ${what}`,
      );
    }
    const dt = w.info(e.stored).dtype;
    if (!["F32", "F16", "BF16", "F64"].includes(dt)) {
      throw new Error(`${w.dir}: ${e.stored} is ${dt}; weights must be F32, F16 or BF16`);
    }
  }
  return found;
}

/**
 * Reads planned weights for a family's `build` (the {@link WeightLoader} it gets): tensors, and
 * linears quantized if asked.
 */
class Loader implements WeightLoader {
  private readonly p: LoadProgress;

  constructor(
    readonly w: HfWeights,
    readonly found: Map<string, Expect>,
    readonly expected: Map<string, number[]>,
    readonly device: Backend,
    readonly opts: HfLoadOptions,
    private readonly t0: number,
  ) {
    let totalBytes = 0;
    for (const e of found.values()) totalBytes += this.storedBytes(e.stored);
    this.p = {
      tensors: 0,
      totalTensors: found.size,
      bytes: 0,
      totalBytes,
      readSeconds: 0,
      quantizeSeconds: 0,
      seconds: 0,
    };
  }

  /** A stored tensor's bytes, with a bitsandbytes weight's companions. */
  private storedBytes(stored: string): number {
    let n = this.w.info(stored).length;
    if (isBnbWeight(this.w, stored)) {
      for (const s of BNB_SUFFIXES) if (this.w.has(stored + s)) n += this.w.info(stored + s).length;
    }
    return n;
  }

  /** Counts one loaded parameter and reports progress. */
  private done(stored: string): void {
    this.p.tensors++;
    this.p.bytes += this.storedBytes(stored);
    this.p.seconds = (performance.now() - this.t0) / 1000;
    this.opts.onProgress?.({ ...this.p });
  }

  /** Reads one stored tensor as f32, timed; the stored bytes are freed once converted. */
  private async readF32(stored: string): Promise<Float32Array> {
    const t = performance.now();
    const raw = await this.w.raw(stored);
    const data = toF32(stored, raw);
    if (data.buffer !== raw.data.buffer) release(raw.data);
    this.p.readSeconds += (performance.now() - t) / 1000;
    return data;
  }

  /** A tensor by canonical name, as f32 on the device (kept). */
  async tensor(name: string): Promise<Tensor> {
    const e = this.found.get(name)!;
    const data = await this.readF32(e.stored);
    const t = Tensor.fromArray(data, e.shape, { device: this.device }).keep(); // a copy
    release(data);
    this.done(e.stored);
    return t;
  }

  /**
   * `${path}.weight` (+ `.bias`) as a Linear, or a frozen QuantLinear when quantizing. A
   * bitsandbytes 4-bit weight goes to the device as stored (codes repacked, never f32), unless
   * `quantize` is `none`: then it is de-quantized into an f32 Linear.
   */
  async linear(path: string, layout: WeightLayout, bias: boolean): Promise<LinearLike> {
    const b = bias ? await this.tensor(`${path}.bias`) : null;
    const q = this.opts.quantize ?? "none";
    const e = this.found.get(`${path}.weight`)!;
    if (isBnbWeight(this.w, e.stored)) {
      const [r, c] = this.expected.get(`${path}.weight`)!;
      const [O, I] = layout === "out_in" ? [r, c] : [c, r];
      const names = [e.stored, ...BNB_SUFFIXES.map((s) => `${e.stored}${s}`)];
      const got = new Map<string, SafetensorsTensor>();
      const t = performance.now();
      for (const n of names) if (this.w.has(n)) got.set(n, await this.w.raw(n));
      const qw = bnbToBlockwise(e.stored, (n) => got.get(n), [O, I]);
      this.p.readSeconds += (performance.now() - t) / 1000;
      if (q === "int8" || q === "f16") {
        throw new Error(
          `${this.w.dir}: ${e.stored} is stored as bitsandbytes ${qw.format}; ` +
            `quantize "${q}" would quantize it a second time`,
        );
      }
      if (q !== "none") {
        const ql = new QuantLinear(toDevice(this.device, qw), b);
        this.done(e.stored);
        return ql;
      }
      const wd = qw.dequantize(); // [O, I]
      let data = wd;
      if (layout === "in_out") {
        data = new Float32Array(I * O);
        for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) data[i * O + o] = wd[o * I + i];
      }
      const lin = new Linear(
        Tensor.fromArray(data, [r, c], { device: this.device }).keep(),
        b,
        layout,
      );
      release(wd);
      release(data);
      this.done(e.stored);
      return lin;
    }
    if (q === "none") return new Linear(await this.tensor(`${path}.weight`), b, layout);
    let w: Float32Array | null = await this.readF32(e.stored);
    const t = performance.now();
    const [r, c] = e.shape;
    const [O, I] = layout === "out_in" ? [r, c] : [c, r];
    if (layout === "in_out") { // Conv1D [in, out] → [out, in], as bitsandbytes stores weights
      const t = new Float32Array(I * O);
      for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) t[o * I + i] = w[i * O + o];
      release(w);
      w = t;
    }
    // 4-bit: quantized on the device where the backend can (WebGPU: the f32 weight goes up once
    // and the codes stay there), else here and uploaded (`quantizeToDevice`).
    const dw = q === "nf4" || q === "fp4"
      ? await quantizeToDevice(this.device, w, [O, I], q, {
        blockSize: this.opts.blockSize ?? 64,
        doubleQuant: this.opts.doubleQuant ?? true,
      })
      : toDevice(this.device, quantize(w, [O, I], q === "int8" ? "int8-row" : "f16"));
    release(w); // the f32 copy is freed now, not at the next garbage collection
    w = null;
    this.p.quantizeSeconds += (performance.now() - t) / 1000;
    const ql = new QuantLinear(dw, b);
    this.done(e.stored);
    return ql;
  }
}

/**
 * Frees a transient host array now (detaching its buffer), rather than whenever the garbage
 * collector next runs: V8 collects big ArrayBuffers late, and a load would otherwise leave the
 * f32 copies of many tensors waiting, up to the whole model's worth. Only for arrays nothing else
 * refers to; a detached buffer is left alone.
 */
function release(a: ArrayBufferView): void {
  const b = a.buffer;
  if (b instanceof ArrayBuffer && !b.detached) b.transfer(0);
}

/** Whether a stored weight is a bitsandbytes 4-bit one (U8 with a quant_state beside it). */
function isBnbWeight(w: HfWeights, stored: string): boolean {
  return w.info(stored).dtype === "U8" &&
    (w.has(`${stored}.quant_state.bitsandbytes__nf4`) ||
      w.has(`${stored}.quant_state.bitsandbytes__fp4`));
}

/**
 * Loads the weights of a Hugging Face folder (any registered family: lib/models/registry.ts)
 * onto `device`; see the module docs for the checks and for streaming quantization. No
 * tokenizer is needed.
 */
export async function loadHfWeights(
  dir: string,
  device: Backend,
  opts: HfLoadOptions = {},
): Promise<HfLoadedWeights> {
  const t0 = performance.now();
  const raw = await readHfConfig(dir);
  const arch = archOf(raw);
  const eos = eosTokenId(raw);
  const bnb = bnbConfigFromHf(raw, `${dir}/config.json`);
  const w = await HfWeights.open(dir);
  try {
    const config = arch.configFromHf(raw);
    checkConfigFitsFiles(arch.paramCount(config), w.dataBytes, arch.dims(config), dir);
    const ex = arch.expectedTensors(config);
    const found = plan(w, ex, arch.canonicalName(config), arch.hfNames[0], bnb);
    const model = await arch.build(new Loader(w, found, ex, device, opts, t0), config);
    return {
      model,
      arch: arch.name as HfArch,
      config: config as ModelConfig,
      metadata: w.metadata,
      eosTokenId: eos,
    };
  } finally {
    w.close();
  }
}

/** {@link loadHfWeights} plus the folder's tokenizer (see {@link loadFolderTokenizer}). */
export async function loadHfModel(
  dir: string,
  device: Backend,
  opts: HfLoadOptions = {},
): Promise<HfLoadedModel> {
  // Tokenizer first: a folder without one fails before any weight is read.
  const tokenizer = await loadFolderTokenizer(dir, eosTokenId(await readHfConfig(dir)));
  const loaded = await loadHfWeights(dir, device, opts);
  if (tokenizer.vocabSize > loaded.model.vocabSize) {
    loaded.model.dispose();
    throw new Error(
      `${dir}: the tokenizer has ${tokenizer.vocabSize} tokens, the model only ${loaded.model.vocabSize}`,
    );
  }
  return { ...loaded, tokenizer };
}
