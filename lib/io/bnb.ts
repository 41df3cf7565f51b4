/**
 * bitsandbytes 4-bit checkpoints (what transformers writes for a model loaded with
 * `BitsAndBytesConfig(load_in_4bit=True)` and saved): per quantized linear `<path>.weight` the
 * packed codes, uint8 [⌈numel / 2⌉, 1], the FIRST element of each pair in the HIGH nibble, and
 * beside it
 *
 * - `weight.absmax`: f32 [numBlocks]; with double quantization uint8 [numBlocks] (indices into
 *   the nested map), plus `weight.nested_absmax` f32 [⌈numBlocks / nested_blocksize⌉] and
 *   `weight.nested_quant_map` f32 [256];
 * - `weight.quant_map`: the 16-entry f32 code table (NF4 or FP4);
 * - `weight.quant_state.bitsandbytes__nf4` (or `__fp4`): uint8 bytes of a UTF-8 JSON object with
 *   `quant_type`, `blocksize`, `dtype`, `shape` ([out, in]) and, when nested, `nested_blocksize`,
 *   `nested_dtype`, `nested_offset`.
 *
 * config.json carries `quantization_config` (`quant_method: "bitsandbytes"`, `load_in_4bit`,
 * `bnb_4bit_quant_type`, `bnb_4bit_use_double_quant`, …). Conversions here are integer repacks
 * (nibble order) and copies: the weights never pass through f32.
 *
 * @module
 */

import { Blockwise4Weight, checkBlockSize } from "../quant/blockwise.ts";
import { sharedTable } from "../quant/codes.ts";
import { DoubleQuantAbsmax } from "../quant/double_quant.ts";
import { type SafetensorsTensor, tensorFromArray, tensorView } from "./safetensors.ts";

/** The 4-bit part of a config.json `quantization_config`. */
export interface BnbConfig {
  /** `nf4` or `fp4`. */
  quantType: "nf4" | "fp4";
  /** `bnb_4bit_use_double_quant`. */
  doubleQuant: boolean;
}

/** The suffixes (after `.weight`) of the companion tensors of a quantized weight. */
export const BNB_SUFFIXES: readonly string[] = [
  ".absmax",
  ".quant_map",
  ".nested_absmax",
  ".nested_quant_map",
  ".quant_state.bitsandbytes__nf4",
  ".quant_state.bitsandbytes__fp4",
];

/** Whether a stored name is a companion tensor of a bitsandbytes weight. */
export function isBnbCompanion(name: string): boolean {
  return BNB_SUFFIXES.some((s) => name.endsWith(`.weight${s}`));
}

/**
 * Reads config.json's `quantization_config`: null without one; the 4-bit settings for
 * bitsandbytes 4-bit; an error naming the problem for any other quantization (8-bit, GPTQ, …).
 */
export function bnbConfigFromHf(raw: Record<string, unknown>, where: string): BnbConfig | null {
  const q = raw.quantization_config as Record<string, unknown> | undefined;
  if (q === undefined || q === null) return null;
  if (typeof q !== "object" || Array.isArray(q)) {
    throw new Error(`${where}: quantization_config is not an object`);
  }
  const method = q.quant_method ?? "bitsandbytes";
  if (method !== "bitsandbytes" || q.load_in_4bit !== true) {
    throw new Error(
      `${where}: quantization_config ${
        JSON.stringify({ quant_method: method, load_in_4bit: q.load_in_4bit })
      } is not supported (only bitsandbytes 4-bit: load_in_4bit true)`,
    );
  }
  const t = q.bnb_4bit_quant_type ?? "fp4"; // bitsandbytes' default
  if (t !== "nf4" && t !== "fp4") {
    throw new Error(`${where}: bnb_4bit_quant_type ${JSON.stringify(t)} is not nf4 or fp4`);
  }
  const storage = q.bnb_4bit_quant_storage ?? "uint8";
  if (storage !== "uint8") {
    throw new Error(`${where}: bnb_4bit_quant_storage ${JSON.stringify(storage)} is not uint8`);
  }
  return { quantType: t, doubleQuant: q.bnb_4bit_use_double_quant === true };
}

/** The JSON object of a `quant_state.bitsandbytes__*` tensor. */
export interface BnbQuantState {
  /** `nf4` or `fp4`. */
  quant_type: string;
  /** Weights per absmax block. */
  blocksize: number;
  /** The dtype de-quantization returns (`float16`, `bfloat16`, `float32`). */
  dtype: string;
  /** Logical shape [out, in]. */
  shape: number[];
  /** Constants per nested block (double quantization). */
  nested_blocksize?: number;
  /** Nested absmax dtype (`float32`). */
  nested_dtype?: string;
  /** The offset (mean of the absmax) added back. */
  nested_offset?: number;
}

function f32Of(name: string, t: SafetensorsTensor | undefined, n: number): Float32Array {
  if (!t) throw new Error(`${name} is missing`);
  if (t.dtype !== "F32") throw new Error(`${name} is ${t.dtype}, not F32`);
  const v = tensorView(t) as Float32Array;
  if (v.length !== n) throw new Error(`${name} has ${v.length} values, not ${n}`);
  return v;
}

function u8Of(name: string, t: SafetensorsTensor | undefined, n: number): Uint8Array {
  if (!t) throw new Error(`${name} is missing`);
  if (t.dtype !== "U8") throw new Error(`${name} is ${t.dtype}, not U8`);
  if (t.data.length !== n) throw new Error(`${name} has ${t.data.length} bytes, not ${n}`);
  return t.data;
}

/**
 * A bitsandbytes 4-bit weight as a {@link Blockwise4Weight} (codes repacked from high-nibble-
 * first bytes into u32 words, absmax and double-quantization arrays copied).
 *
 * @param name the stored weight name (`….weight`), for messages and companion names
 * @param get the stored tensors by name (undefined when absent)
 * @param shape the [out, in] the model expects
 */
export function bnbToBlockwise(
  name: string,
  get: (n: string) => SafetensorsTensor | undefined,
  shape: readonly [number, number],
): Blockwise4Weight {
  const stateT = get(`${name}.quant_state.bitsandbytes__nf4`) ??
    get(`${name}.quant_state.bitsandbytes__fp4`);
  if (!stateT) throw new Error(`${name}: no quant_state.bitsandbytes__nf4/__fp4 tensor`);
  let st: BnbQuantState;
  try {
    st = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(stateT.data));
  } catch (e) {
    throw new Error(`${name}: quant_state is not UTF-8 JSON: ${(e as Error).message}`);
  }
  const format = st.quant_type;
  if (format !== "nf4" && format !== "fp4") {
    throw new Error(`${name}: quant_type ${JSON.stringify(format)} is not nf4 or fp4`);
  }
  if (!Array.isArray(st.shape) || st.shape.join(",") !== shape.join(",")) {
    throw new Error(
      `${name}: quant_state shape ${JSON.stringify(st.shape)}, expected [${shape.join(", ")}]`,
    );
  }
  const bs = st.blocksize;
  checkBlockSize(`${name}: blocksize`, bs);
  const numel = shape[0] * shape[1], numBlocks = Math.ceil(numel / bs);
  const table = f32Of(`${name}.quant_map`, get(`${name}.quant_map`), 16);
  const ours = sharedTable(format);
  for (let c = 0; c < 16; c++) {
    if (table[c] !== ours[c]) {
      throw new Error(
        `${name}.quant_map[${c}] = ${table[c]}, not bitsandbytes' ${format} value ${ours[c]}`,
      );
    }
  }
  const w = get(name);
  const bytes = u8Of(name, w, Math.ceil(numel / 2));
  const packed = new Uint32Array((numBlocks * bs) / 8); // padding: code 0, never returned
  for (let b = 0; b < bytes.length; b++) {
    const v = bytes[b], i = 2 * b; // element 2b in the high nibble, 2b+1 in the low
    packed[i >>> 3] |= (v >>> 4) << ((i & 7) * 4);
    if (i + 1 < numel) packed[(i + 1) >>> 3] |= (v & 15) << (((i + 1) & 7) * 4);
  }
  const absT = get(`${name}.absmax`);
  const nested = get(`${name}.nested_absmax`) !== undefined || absT?.dtype === "U8";
  if (!nested) {
    const absmax = f32Of(`${name}.absmax`, absT, numBlocks).slice();
    return new Blockwise4Weight(format, shape, bs, packed, absmax, null);
  }
  const nbs = st.nested_blocksize;
  if (!Number.isInteger(nbs) || nbs! < 1) {
    throw new Error(`${name}: nested_blocksize ${JSON.stringify(nbs)} is not a positive integer`);
  }
  if (typeof st.nested_offset !== "number" || !Number.isFinite(st.nested_offset)) {
    throw new Error(`${name}: nested_offset ${JSON.stringify(st.nested_offset)} is not a number`);
  }
  const codes = u8Of(`${name}.absmax`, absT, numBlocks).slice();
  const scales = f32Of(
    `${name}.nested_absmax`,
    get(`${name}.nested_absmax`),
    Math.ceil(numBlocks / nbs!),
  ).slice();
  const map = f32Of(`${name}.nested_quant_map`, get(`${name}.nested_quant_map`), 256).slice();
  const dq = new DoubleQuantAbsmax(codes, scales, new Float32Array([st.nested_offset]), nbs!, map);
  return new Blockwise4Weight(format, shape, bs, packed, null, dq);
}

/**
 * The stored tensors of a 4-bit weight in bitsandbytes' layout, by name (`name` is the weight's,
 * `….weight`). `dtype` is what bitsandbytes de-quantizes to (the model's dtype, `float32` here).
 */
export function blockwiseToBnb(
  name: string,
  q: Blockwise4Weight,
  dtype = "float32",
): Map<string, SafetensorsTensor> {
  if (q.format !== "nf4" && q.format !== "fp4") {
    throw new Error(`${name}: bitsandbytes stores nf4 or fp4, not ${q.format}`);
  }
  if (q.shape.length !== 2) throw new Error(`${name}: shape [${q.shape}] is not [out, in]`);
  const out = new Map<string, SafetensorsTensor>();
  const bytes = new Uint8Array(Math.ceil(q.numel / 2)); // element 2b high, 2b+1 low
  for (let b = 0; b < bytes.length; b++) {
    const i = 2 * b;
    bytes[b] = (q.code(i) << 4) | (i + 1 < q.numel ? q.code(i + 1) : 0);
  }
  out.set(name, tensorFromArray("U8", [bytes.length, 1], bytes));
  const state: BnbQuantState = {
    quant_type: q.format,
    blocksize: q.blockSize,
    dtype,
    shape: [...q.shape],
  };
  if (q.dq) {
    out.set(`${name}.absmax`, tensorFromArray("U8", [q.dq.length], q.dq.codes));
    out.set(`${name}.nested_absmax`, tensorFromArray("F32", [q.dq.scales.length], q.dq.scales));
    out.set(`${name}.nested_quant_map`, tensorFromArray("F32", [256], q.dq.map));
    state.nested_blocksize = q.dq.blockSize;
    state.nested_dtype = "float32";
    state.nested_offset = q.dq.offset[0];
  } else {
    out.set(`${name}.absmax`, tensorFromArray("F32", [q.absmax!.length], q.absmax!));
  }
  out.set(`${name}.quant_map`, tensorFromArray("F32", [16], q.codeTable()));
  const json = new TextEncoder().encode(JSON.stringify(state));
  out.set(
    `${name}.quant_state.bitsandbytes__${q.format}`,
    tensorFromArray("U8", [json.length], json),
  );
  return out;
}

/** config.json's `quantization_config` for a bitsandbytes 4-bit model (transformers' keys). */
export function bnbQuantizationConfig(
  c: BnbConfig,
  computeDtype = "float32",
): Record<string, unknown> {
  return {
    quant_method: "bitsandbytes",
    load_in_4bit: true,
    load_in_8bit: false,
    bnb_4bit_quant_type: c.quantType,
    bnb_4bit_use_double_quant: c.doubleQuant,
    bnb_4bit_compute_dtype: computeDtype,
    bnb_4bit_quant_storage: "uint8",
    llm_int8_skip_modules: null,
    llm_int8_threshold: 6.0,
    llm_int8_has_fp16_weight: false,
    llm_int8_enable_fp32_cpu_offload: false,
  };
}
