/**
 * Hugging Face model folders: `config.json` plus `model.safetensors`, or sharded
 * `model-0000N-of-0000M.safetensors` listed by `model.safetensors.index.json`, for GPT-2
 * (`GPT2LMHeadModel` / `GPT2Model`) and Llama (`LlamaForCausalLM` / `LlamaModel`), with F32,
 * F16 or BF16 tensors, and the folder's tokenizer.
 *
 * Loading streams: shard headers are read first and every expected tensor is checked (present,
 * right shape, supported dtype, nothing unexpected) before any data is read; then one tensor at a
 * time is read from disk, converted to f32 and put on the device. With `quantize` the block
 * linears are quantized (NF4 with double quantization, FP4, int8 or f16) as they are read, so the
 * whole model never exists in f32: peak host memory is one tensor's bytes plus its f32 copy.
 *
 * Checkpoints published already quantized by bitsandbytes (config.json `quantization_config`
 * with `load_in_4bit`; NF4 or FP4, with or without double quantization, see `bnb.ts`) load their
 * 4-bit linears straight into {@link QuantLinear}s, as stored (an integer repack of the codes,
 * no f32 copy); with `quantize: "none"` they are de-quantized into f32 Linears instead.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { loadHfTokenizer } from "../data/bpe.ts";
import type { TokenizerJSON } from "../data/tokenizer.ts";
import { tokenizerFromJSON } from "../data/tokenizer_files.ts";
import { sha256Hex } from "../data/hash.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { Block, GPT, type GPTConfig, validateConfig } from "../nn/gpt.ts";
import { LayerNorm, Linear, type LinearLike, type WeightLayout } from "../nn/linear.ts";
import {
  Llama,
  LlamaBlock,
  type LlamaConfig,
  llamaDims,
  RMSNorm,
  validateLlamaConfig,
} from "../nn/llama.ts";
import type { BaseQuant } from "../nn/quant_linear.ts";
import { QuantLinear } from "../nn/quant_linear.ts";
import { toDevice } from "../quant/device_weight.ts";
import {
  BNB_SUFFIXES,
  type BnbConfig,
  bnbConfigFromHf,
  bnbToBlockwise,
  isBnbCompanion,
} from "./bnb.ts";
import { fromBf16Bits, fromF16Bits } from "../quant/f16.ts";
import { quantize } from "../quant/quantize.ts";
import { Tensor } from "../tensor.ts";
import {
  MAX_JSON_BYTES,
  openChecked,
  parseJsonText,
  pathExists,
  readFileChecked,
  readJsonChecked,
  sha256File,
} from "./read_file.ts";
import {
  type Dtype,
  headerLength,
  parseHeader,
  type SafetensorsTensor,
  tensorView,
} from "./safetensors.ts";

// ---------------------------------------------------------------------------------------------
// Lazy safetensors: header now, tensor bytes on demand.

/** Where one tensor lives in a safetensors file. */
export interface TensorInfo {
  /** Element type. */
  dtype: Dtype;
  /** Dimensions. */
  shape: number[];
  /** Byte offset of the data in the file. */
  offset: number;
  /** Byte length of the data. */
  length: number;
}

/** A safetensors file whose header is parsed and whose tensors are read one at a time. */
export class LazySafetensors {
  private constructor(
    readonly path: string,
    readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
    private file: Deno.FsFile,
  ) {}

  /**
   * Opens `path` (a regular file the process may read, links resolved) and checks its header
   * with the same strict reader as {@link parseSafetensors}: dtypes, shapes, byte lengths, no
   * overlaps, holes, trailing bytes or duplicate keys, string-only `__metadata__`.
   */
  static async open(path: string): Promise<LazySafetensors> {
    const { file, info } = await openChecked(path);
    try {
      const size = info.size;
      const n = headerLength(await readAt(file, 0, Math.min(8, size)), size);
      const { entries, metadata } = parseHeader(await readAt(file, 8, n), size - 8 - n);
      const tensors = new Map<string, TensorInfo>();
      for (const e of entries) {
        tensors.set(e.name, {
          dtype: e.dtype,
          shape: e.shape,
          offset: 8 + n + e.begin,
          length: e.end - e.begin,
        });
      }
      return new LazySafetensors(path, tensors, metadata, file);
    } catch (e) {
      file.close();
      throw new Error(`${path}: ${(e as Error).message}`);
    }
  }

  /** Reads one tensor's bytes. */
  async read(name: string): Promise<SafetensorsTensor> {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.path}: no tensor ${name}`);
    return {
      dtype: t.dtype,
      shape: [...t.shape],
      data: await readAt(this.file, t.offset, t.length),
    };
  }

  /** Closes the file. */
  close(): void {
    this.file.close();
  }
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) throw new Error(`unexpected end of file at byte ${offset + got}`);
    got += n;
  }
  return out;
}

/** A tensor's values as f32: F32 as is, F16/BF16/F64 converted; other dtypes are an error. */
export function toF32(name: string, t: SafetensorsTensor): Float32Array {
  const v = tensorView(t);
  switch (t.dtype) {
    case "F32":
      return v as Float32Array;
    case "F16":
      return fromF16Bits(v as Uint16Array);
    case "BF16":
      return fromBf16Bits(v as Uint16Array);
    case "F64":
      return Float32Array.from(v as Float64Array);
    default:
      throw new Error(`${name} is ${t.dtype}; only F32, F16, BF16 and F64 weights are supported`);
  }
}

// ---------------------------------------------------------------------------------------------
// The weights of a folder (one file or shards).

/** Every tensor of a model folder, single-file or sharded, read lazily. */
export class HfWeights {
  private constructor(
    readonly dir: string,
    private readonly where: Map<string, LazySafetensors>,
    private readonly files: LazySafetensors[],
  ) {}

  /**
   * Opens `model.safetensors`, or the shards named by `model.safetensors.index.json`
   * (every tensor of its `weight_map` must be in the shard it names).
   */
  static async open(dir: string): Promise<HfWeights> {
    const index = `${dir}/model.safetensors.index.json`;
    if (await pathExists(index)) {
      const j = await readJsonChecked(index) as { weight_map?: unknown } | null;
      const wm = j?.weight_map;
      if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
        throw new Error(`${index}: no "weight_map" object of tensor name → shard file`);
      }
      const byFile = new Map<string, string[]>();
      for (const [name, f] of Object.entries(wm)) {
        if (typeof f !== "string" || f.includes("/") || f.includes("\\") || !f) {
          throw new Error(
            `${index}: weight_map["${name}"] = ${JSON.stringify(f)} is not a file name`,
          );
        }
        byFile.set(f, [...(byFile.get(f) ?? []), name]);
      }
      if (byFile.size === 0) throw new Error(`${index}: weight_map is empty`);
      const files: LazySafetensors[] = [];
      const where = new Map<string, LazySafetensors>();
      try {
        for (const [f, names] of [...byFile].sort(([a], [b]) => a < b ? -1 : 1)) {
          if (!(await pathExists(`${dir}/${f}`))) {
            throw new Error(`${index} names shard ${f}, which is missing from ${dir}`);
          }
          const st = await LazySafetensors.open(`${dir}/${f}`);
          files.push(st);
          for (const n of names) {
            if (!st.tensors.has(n)) {
              throw new Error(`${index} puts ${n} in ${f}, but ${f} has no such tensor`);
            }
            where.set(n, st);
          }
        }
      } catch (e) {
        for (const f of files) f.close();
        throw e;
      }
      return new HfWeights(dir, where, files);
    }
    const single = `${dir}/model.safetensors`;
    if (!(await pathExists(single))) {
      const bin = await pathExists(`${dir}/pytorch_model.bin`);
      throw new Error(
        `${dir} has no model.safetensors or model.safetensors.index.json` +
          (bin ? " (only pytorch_model.bin: convert it to safetensors first)" : ""),
      );
    }
    const st = await LazySafetensors.open(single);
    return new HfWeights(dir, new Map([...st.tensors.keys()].map((n) => [n, st])), [st]);
  }

  /** Tensor names, as stored. */
  names(): string[] {
    return [...this.where.keys()];
  }

  /** dtype and shape of a tensor. */
  info(name: string): TensorInfo {
    const f = this.where.get(name);
    if (!f) throw new Error(`${this.dir}: missing tensor ${name}`);
    return f.tensors.get(name)!;
  }

  /** Whether a tensor of that name is stored. */
  has(name: string): boolean {
    return this.where.has(name);
  }

  /** Reads one tensor's stored bytes. */
  async raw(name: string): Promise<SafetensorsTensor> {
    const f = this.where.get(name);
    if (!f) throw new Error(`${this.dir}: missing tensor ${name}`);
    return await f.read(name);
  }

  /** Reads one tensor as f32. */
  async f32(name: string): Promise<Float32Array> {
    const f = this.where.get(name);
    if (!f) throw new Error(`${this.dir}: missing tensor ${name}`);
    return toF32(name, await f.read(name));
  }

  /** Bytes of every tensor's data, over all files. */
  get dataBytes(): number {
    let n = 0;
    for (const f of this.files) for (const t of f.tensors.values()) n += t.length;
    return n;
  }

  /** The `__metadata__` of the first file. */
  get metadata(): Record<string, string> {
    return this.files[0].metadata;
  }

  /** Closes every file. */
  close(): void {
    for (const f of this.files) f.close();
  }
}

/** Whether a stored weight is a bitsandbytes 4-bit one (U8 with a quant_state beside it). */
function isBnbWeight(w: HfWeights, stored: string): boolean {
  return w.info(stored).dtype === "U8" &&
    (w.has(`${stored}.quant_state.bitsandbytes__nf4`) ||
      w.has(`${stored}.quant_state.bitsandbytes__fp4`));
}

/**
 * SHA-256 of a folder's weights: of `model.safetensors` when there is one (so folders written by
 * saveModel keep their digest), else of the index file and each shard's digest in order. Files
 * are hashed in chunks, never held whole in memory.
 */
export async function hashModelWeights(dir: string): Promise<string> {
  if (await pathExists(`${dir}/model.safetensors`)) {
    return await sha256File(`${dir}/model.safetensors`);
  }
  const indexPath = `${dir}/model.safetensors.index.json`;
  const index = new TextDecoder().decode(await readFileChecked(indexPath, MAX_JSON_BYTES));
  const wm = (parseJsonText(index, indexPath) as { weight_map?: Record<string, string> } | null)
    ?.weight_map ?? {};
  const shards = [...new Set(Object.values(wm))].sort();
  let all = await sha256Hex(index);
  for (const s of shards) all += await sha256File(`${dir}/${s}`);
  return sha256Hex(all);
}

// ---------------------------------------------------------------------------------------------
// Configs

/** Architectures this loader knows. */
export type HfArch = "gpt2" | "llama";

const ARCHS: Record<string, HfArch> = {
  gpt2: "gpt2",
  GPT2LMHeadModel: "gpt2",
  GPT2Model: "gpt2",
  llama: "llama",
  LlamaForCausalLM: "llama",
  LlamaModel: "llama",
};

/** The architecture of a parsed config.json (`model_type`, else `architectures[0]`). */
export function hfArch(raw: Record<string, unknown>): HfArch {
  const names = [raw.model_type, ...(Array.isArray(raw.architectures) ? raw.architectures : [])]
    .filter((x) => x !== undefined);
  for (const n of names) {
    if (typeof n === "string" && Object.hasOwn(ARCHS, n)) return ARCHS[n];
  }
  throw new Error(
    `unknown architecture ${
      JSON.stringify(names.length ? names : null)
    } in config.json: loralab loads gpt2 (GPT2LMHeadModel) and llama (LlamaForCausalLM)`,
  );
}

/** An optional config.json number that must be finite and > 0 (`null` = absent). */
function positiveField(raw: Record<string, unknown>, key: string, dflt: number): number {
  const v = raw[key] ?? dflt;
  if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
    throw new Error(`config.json: ${key} = ${JSON.stringify(v)}: expected a number > 0`);
  }
  return v;
}

/** An optional config.json boolean (`null` = absent). */
function boolField(raw: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = raw[key] ?? dflt;
  if (typeof v !== "boolean") {
    throw new Error(`config.json: ${key} = ${JSON.stringify(v)}: expected true or false`);
  }
  return v;
}

/**
 * Parameters a GPT-2 config implies (biases and norms included), counted by formula, without
 * building anything: what {@link checkConfigFitsFiles} compares with the weights' bytes.
 */
export function gpt2ParamCount(c: GPTConfig): number {
  const C = c.n_embd;
  const block = 4 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
  return (c.vocab_size + c.n_positions) * C + 2 * C + c.n_layer * block;
}

/** Weight parameters a Llama config implies (no biases, no norms): a lower bound, by formula. */
export function llamaParamCount(c: LlamaConfig): number {
  const C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const { nh, nkv, hd } = llamaDims(c);
  const block = 2 * C * nh * hd + 2 * C * nkv * hd + 3 * C * I;
  return V * C * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * block;
}

/**
 * Throws unless the weight files can hold the parameters config.json describes, at half a byte
 * each (4-bit, the smallest storage a checkpoint may use). Checked before anything is built or
 * allocated, so a config with `n_layer: 1000000` or `vocab_size: 2000000` is one clear error
 * instead of gigabytes of allocation.
 */
export function checkConfigFitsFiles(
  params: number,
  fileBytes: number,
  dims: Record<string, number>,
  where: string,
): void {
  if (params / 2 <= fileBytes) return;
  const fields = Object.entries(dims).map(([k, v]) => `${k} ${v}`).join(", ");
  throw new Error(
    `${where}: config.json (${fields}) describes ${params.toExponential(3)} parameters, ` +
      `at least ${fmtBytes(params / 2)}, but the weight files hold only ${fmtBytes(fileBytes)}`,
  );
}

function fmtBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(2)} MB`;
}

/** GPT2Config fields → {@link GPTConfig}, refusing variants the model does not implement. */
export function gpt2ConfigFromHf(raw: Record<string, unknown>): GPTConfig {
  const c: GPTConfig = {
    vocab_size: raw.vocab_size as number,
    n_positions: raw.n_positions as number,
    n_embd: raw.n_embd as number,
    n_layer: raw.n_layer as number,
    n_head: raw.n_head as number,
    layer_norm_epsilon: positiveField(raw, "layer_norm_epsilon", 1e-5),
  };
  validateConfig(c);
  const act = raw.activation_function ?? "gelu_new";
  if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") {
    throw new Error(`config.json: activation_function ${act} is not supported (only gelu_new)`);
  }
  if (raw.n_inner != null && raw.n_inner !== 4 * c.n_embd) {
    throw new Error(`config.json: n_inner ${raw.n_inner} is not 4·n_embd (${4 * c.n_embd})`);
  }
  if (raw.scale_attn_by_inverse_layer_idx || raw.add_cross_attention) {
    throw new Error(
      "config.json: scale_attn_by_inverse_layer_idx / add_cross_attention are not supported",
    );
  }
  return c;
}

/** LlamaConfig fields → {@link LlamaConfig} (defaults as in transformers), validated. */
export function llamaConfigFromHf(raw: Record<string, unknown>): LlamaConfig {
  const c: LlamaConfig = {
    vocab_size: raw.vocab_size as number,
    hidden_size: raw.hidden_size as number,
    intermediate_size: raw.intermediate_size as number,
    num_hidden_layers: raw.num_hidden_layers as number,
    num_attention_heads: raw.num_attention_heads as number,
    num_key_value_heads: (raw.num_key_value_heads as number | null | undefined) ??
      (raw.num_attention_heads as number),
    rms_norm_eps: positiveField(raw, "rms_norm_eps", 1e-6),
    rope_theta: positiveField(raw, "rope_theta", 10000),
    max_position_embeddings: (raw.max_position_embeddings as number | undefined) ?? 2048,
    tie_word_embeddings: boolField(raw, "tie_word_embeddings", false),
    attention_bias: boolField(raw, "attention_bias", false),
    mlp_bias: boolField(raw, "mlp_bias", false),
    rope_scaling: (raw.rope_scaling as LlamaConfig["rope_scaling"]) ?? null,
  };
  if (raw.head_dim != null) c.head_dim = raw.head_dim as number;
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu") throw new Error(`config.json: hidden_act ${act} is not supported (silu)`);
  if (raw.pretraining_tp != null && raw.pretraining_tp !== 1) {
    // transformers itself computes the same function for any pretraining_tp; nothing to do.
  }
  validateLlamaConfig(c);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Loading

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
}

/** What {@link loadHfWeights} returns. */
export interface HfLoadedWeights {
  /** The model on the requested backend. */
  model: CausalLM;
  /** `gpt2` or `llama`. */
  arch: HfArch;
  /** Its parsed config. */
  config: GPTConfig | LlamaConfig;
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

/** Reads config.json of `dir`. */
export async function readHfConfig(dir: string): Promise<Record<string, unknown>> {
  let j: unknown;
  try {
    j = await readJsonChecked(`${dir}/config.json`);
  } catch (e) {
    throw new Error(`cannot read ${dir}/config.json: ${(e as Error).message}`);
  }
  if (typeof j !== "object" || j === null || Array.isArray(j)) {
    throw new Error(`${dir}/config.json is not a JSON object`);
  }
  return j as Record<string, unknown>;
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
      continue; // read with its weight (Builder.linear)
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

/** Builds tensors and linears from planned weights, quantizing linears if asked. */
class Builder {
  constructor(
    readonly w: HfWeights,
    readonly found: Map<string, Expect>,
    readonly expected: Map<string, number[]>,
    readonly device: Backend,
    readonly opts: HfLoadOptions,
  ) {}

  async tensor(name: string): Promise<Tensor> {
    const e = this.found.get(name)!;
    const data = await this.w.f32(e.stored);
    return Tensor.fromArray(data, e.shape, { device: this.device }).keep();
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
      for (const n of names) if (this.w.has(n)) got.set(n, await this.w.raw(n));
      const qw = bnbToBlockwise(e.stored, (n) => got.get(n), [O, I]);
      if (q === "int8" || q === "f16") {
        throw new Error(
          `${this.w.dir}: ${e.stored} is stored as bitsandbytes ${qw.format}; ` +
            `quantize "${q}" would quantize it a second time`,
        );
      }
      if (q !== "none") return new QuantLinear(toDevice(this.device, qw), b);
      const wd = qw.dequantize(); // [O, I]
      let data = wd;
      if (layout === "in_out") {
        data = new Float32Array(I * O);
        for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) data[i * O + o] = wd[o * I + i];
      }
      return new Linear(Tensor.fromArray(data, [r, c], { device: this.device }).keep(), b, layout);
    }
    if (q === "none") return new Linear(await this.tensor(`${path}.weight`), b, layout);
    let w = await this.w.f32(e.stored);
    const [r, c] = e.shape;
    const [O, I] = layout === "out_in" ? [r, c] : [c, r];
    if (layout === "in_out") { // Conv1D [in, out] → [out, in], as bitsandbytes stores weights
      const t = new Float32Array(I * O);
      for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) t[o * I + i] = w[i * O + o];
      w = t;
    }
    const qw = q === "nf4" || q === "fp4"
      ? quantize(w, [O, I], q, {
        blockSize: this.opts.blockSize ?? 64,
        doubleQuant: this.opts.doubleQuant ?? true,
      })
      : quantize(w, [O, I], q === "int8" ? "int8-row" : "f16");
    return new QuantLinear(toDevice(this.device, qw), b);
  }
}

/** The dimensions of a GPT-2 config that size its weights, for error messages. */
export function gpt2Dims(c: GPTConfig): Record<string, number> {
  return {
    vocab_size: c.vocab_size,
    n_positions: c.n_positions,
    n_embd: c.n_embd,
    n_layer: c.n_layer,
  };
}

/** The shape of every GPT-2 parameter, by canonical name, in model order. */
export function gpt2Expected(c: GPTConfig): Map<string, number[]> {
  const C = c.n_embd;
  const m = new Map<string, number[]>([
    ["transformer.wte.weight", [c.vocab_size, C]],
    ["transformer.wpe.weight", [c.n_positions, C]],
    ["transformer.ln_f.weight", [C]],
    ["transformer.ln_f.bias", [C]],
  ]);
  for (let i = 0; i < c.n_layer; i++) {
    const p = `transformer.h.${i}`;
    for (const ln of ["ln_1", "ln_2"]) {
      m.set(`${p}.${ln}.weight`, [C]);
      m.set(`${p}.${ln}.bias`, [C]);
    }
    for (
      const [n, i0, o] of [
        ["attn.c_attn", C, 3 * C],
        ["attn.c_proj", C, C],
        ["mlp.c_fc", C, 4 * C],
        ["mlp.c_proj", 4 * C, C],
      ] as const
    ) {
      m.set(`${p}.${n}.weight`, [i0, o]);
      m.set(`${p}.${n}.bias`, [o]);
    }
  }
  return m;
}

/** GPT-2 stored name → canonical (`transformer.` prefix optional; buffers ignored). */
function gpt2Canonical(s: string): string | null {
  if (s === "lm_head.weight") return null; // tied to wte
  if (/\.attn\.(masked_)?bias$/.test(s)) return null; // causal-mask buffers of old checkpoints
  return s.startsWith("transformer.") ? s : `transformer.${s}`;
}

async function buildGpt2(b: Builder, c: GPTConfig): Promise<GPT> {
  const eps = c.layer_norm_epsilon ?? 1e-5;
  const ln = async (p: string) =>
    new LayerNorm(await b.tensor(`${p}.weight`), await b.tensor(`${p}.bias`), eps);
  const wte = await b.tensor("transformer.wte.weight");
  const wpe = await b.tensor("transformer.wpe.weight");
  const h: Block[] = [];
  for (let i = 0; i < c.n_layer; i++) {
    const p = `transformer.h.${i}`;
    h.push(
      new Block(c, b.device, {
        ln_1: await ln(`${p}.ln_1`),
        attn: {
          c_attn: await b.linear(`${p}.attn.c_attn`, "in_out", true),
          c_proj: await b.linear(`${p}.attn.c_proj`, "in_out", true),
        },
        ln_2: await ln(`${p}.ln_2`),
        mlp: {
          c_fc: await b.linear(`${p}.mlp.c_fc`, "in_out", true),
          c_proj: await b.linear(`${p}.mlp.c_proj`, "in_out", true),
        },
      }),
    );
  }
  const ln_f = await ln("transformer.ln_f");
  return GPT.fromParts(c, b.device, { wte, wpe, h, ln_f });
}

function llamaExpected(c: LlamaConfig): Map<string, number[]> {
  const C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const { nh, nkv, hd } = llamaDims(c);
  const m = new Map<string, number[]>([["model.embed_tokens.weight", [V, C]]]);
  const ab = c.attention_bias ?? false, mb = c.mlp_bias ?? false;
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    m.set(`${p}.input_layernorm.weight`, [C]);
    m.set(`${p}.post_attention_layernorm.weight`, [C]);
    for (
      const [n, o, i0, bias] of [
        ["self_attn.q_proj", nh * hd, C, ab],
        ["self_attn.k_proj", nkv * hd, C, ab],
        ["self_attn.v_proj", nkv * hd, C, ab],
        ["self_attn.o_proj", C, nh * hd, ab],
        ["mlp.gate_proj", I, C, mb],
        ["mlp.up_proj", I, C, mb],
        ["mlp.down_proj", C, I, mb],
      ] as const
    ) {
      m.set(`${p}.${n}.weight`, [o, i0]);
      if (bias) m.set(`${p}.${n}.bias`, [o]);
    }
  }
  m.set("model.norm.weight", [C]);
  if (!c.tie_word_embeddings) m.set("lm_head.weight", [V, C]);
  return m;
}

/** Llama stored name → canonical (`model.` prefix optional for LlamaModel; buffers ignored). */
function llamaCanonical(c: LlamaConfig): (s: string) => string | null {
  return (s) => {
    if (s.endsWith(".rotary_emb.inv_freq")) return null;
    if (s === "lm_head.weight") return c.tie_word_embeddings ? null : s;
    return s.startsWith("model.") ? s : `model.${s}`;
  };
}

async function buildLlama(b: Builder, c: LlamaConfig): Promise<Llama> {
  const eps = c.rms_norm_eps ?? 1e-6;
  const ab = c.attention_bias ?? false, mb = c.mlp_bias ?? false;
  const embed = await b.tensor("model.embed_tokens.weight");
  const layers: LlamaBlock[] = [];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    const lin = (n: string, bias: boolean) => b.linear(`${p}.${n}`, "out_in", bias);
    layers.push(
      new LlamaBlock(c, {
        input_layernorm: new RMSNorm(await b.tensor(`${p}.input_layernorm.weight`), eps),
        self_attn: {
          q_proj: await lin("self_attn.q_proj", ab),
          k_proj: await lin("self_attn.k_proj", ab),
          v_proj: await lin("self_attn.v_proj", ab),
          o_proj: await lin("self_attn.o_proj", ab),
        },
        post_attention_layernorm: new RMSNorm(
          await b.tensor(`${p}.post_attention_layernorm.weight`),
          eps,
        ),
        mlp: {
          gate_proj: await lin("mlp.gate_proj", mb),
          up_proj: await lin("mlp.up_proj", mb),
          down_proj: await lin("mlp.down_proj", mb),
        },
      }),
    );
  }
  const norm = new RMSNorm(await b.tensor("model.norm.weight"), eps);
  const head = c.tie_word_embeddings ? null : await b.tensor("lm_head.weight");
  return new Llama(c, b.device, { embed_tokens: embed, layers, norm, lm_head: head });
}

/**
 * Loads the weights of a Hugging Face folder (GPT-2 or Llama) onto `device`; see the module
 * docs for the checks and for streaming quantization. No tokenizer is needed.
 */
export async function loadHfWeights(
  dir: string,
  device: Backend,
  opts: HfLoadOptions = {},
): Promise<HfLoadedWeights> {
  const raw = await readHfConfig(dir);
  const arch = hfArch(raw);
  const eos = Array.isArray(raw.eos_token_id) ? raw.eos_token_id[0] : raw.eos_token_id;
  const eosTokenId = Number.isInteger(eos) ? eos as number : undefined;
  const bnb = bnbConfigFromHf(raw, `${dir}/config.json`);
  const w = await HfWeights.open(dir);
  try {
    if (arch === "gpt2") {
      const config = gpt2ConfigFromHf(raw);
      checkConfigFitsFiles(gpt2ParamCount(config), w.dataBytes, gpt2Dims(config), dir);
      const ex = gpt2Expected(config);
      const found = plan(w, ex, gpt2Canonical, "GPT2LMHeadModel", bnb);
      const model = await buildGpt2(new Builder(w, found, ex, device, opts), config);
      return { model, arch, config, metadata: w.metadata, eosTokenId };
    }
    const config = llamaConfigFromHf(raw);
    checkConfigFitsFiles(llamaParamCount(config), w.dataBytes, {
      vocab_size: config.vocab_size,
      hidden_size: config.hidden_size,
      intermediate_size: config.intermediate_size,
      num_hidden_layers: config.num_hidden_layers,
    }, dir);
    const ex = llamaExpected(config);
    const found = plan(w, ex, llamaCanonical(config), "LlamaForCausalLM", bnb);
    const model = await buildLlama(new Builder(w, found, ex, device, opts), config);
    return { model, arch, config, metadata: w.metadata, eosTokenId };
  } finally {
    w.close();
  }
}

/**
 * The tokenizer of a model folder: loralab's own `tokenizer.json` (with a `type` field, see
 * tokenizerFromJSON), else Hugging Face's (`tokenizer.json`, or `vocab.json` + `merges.txt`).
 */
export async function loadFolderTokenizer(dir: string, eosTokenId?: number): Promise<Tokenizer> {
  if (await pathExists(`${dir}/tokenizer.json`)) {
    const j = await readJsonChecked(`${dir}/tokenizer.json`);
    if (typeof (j as { type?: unknown })?.type === "string") {
      return tokenizerFromJSON(j as TokenizerJSON);
    }
  }
  return await loadHfTokenizer(dir, eosTokenId);
}

/** {@link loadHfWeights} plus the folder's tokenizer (see {@link loadFolderTokenizer}). */
export async function loadHfModel(
  dir: string,
  device: Backend,
  opts: HfLoadOptions = {},
): Promise<HfLoadedModel> {
  // Tokenizer first: a folder without one fails before any weight is read.
  const raw = await readHfConfig(dir);
  const eos = Array.isArray(raw.eos_token_id) ? raw.eos_token_id[0] : raw.eos_token_id;
  const tokenizer = await loadFolderTokenizer(
    dir,
    Number.isInteger(eos) ? eos as number : undefined,
  );
  const loaded = await loadHfWeights(dir, device, opts);
  if (tokenizer.vocabSize > loaded.model.vocabSize) {
    loaded.model.dispose();
    throw new Error(
      `${dir}: the tokenizer has ${tokenizer.vocabSize} tokens, the model only ${loaded.model.vocabSize}`,
    );
  }
  return { ...loaded, tokenizer };
}
