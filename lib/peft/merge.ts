/**
 * Merging a LoRA adapter into its base model: W' = W + s·B·A for every adapted linear
 * (s = α/r, or α/√r with rsLoRA; A [r, in], B [out, r]; added transposed to GPT-2's Conv1D
 * weights, which are stored [in, out]: PEFT's `fan_in_fan_out`), written as a plain Hugging
 * Face model folder that needs no PEFT and no bitsandbytes: config.json without any
 * `quantization_config`, model.safetensors with the base's tensor names and dtype, and the
 * base's tokenizer files copied byte for byte.
 *
 * The base is the one the adapter was trained against (see load_adapted.ts): for a QLoRA
 * adapter (adapter_config.json `loralab.quant` nf4, fp4, int8 or f16) every block linear is
 * quantized as in training and DE-QUANTIZED, so the merged model computes what base + adapter
 * computed; a bitsandbytes 4-bit base is de-quantized from its stored codes. The sum is formed
 * in float64 and rounded once to the stored dtype (round to nearest, ties to even; see
 * lib/io/encode_float.ts); bitsandbytes weights take the dtype of the folder's embedding.
 *
 * @module
 */

import { cpu } from "../backend/device.ts";
import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.ts";
import { isBnbCompanion } from "../io/bnb.ts";
import { encodeFloats, type FloatDtype } from "../io/encode_float.ts";
import { readHfConfig } from "../io/hf_config.ts";
import { HfWeights } from "../io/hf_weights.ts";
import { MAX_TEXT_BYTES, pathExists, readFileChecked } from "../io/read_file.ts";
import { type SafetensorsTensor, writeSafetensors } from "../io/safetensors.ts";
import { Linear } from "../nn/linear.ts";
import { dequantizeOnDevice } from "../quant/qmatmul.ts";
import { type BaseQuant, QuantLinear } from "../nn/quant_linear.ts";
import { loadWithAdapter } from "./load_adapted.ts";
import { LoraLinear } from "./lora.ts";

/** Files copied from the base folder when present (tokenizer and generation settings). */
export const COPIED_FILES: readonly string[] = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "tokenizer.model",
  "generation_config.json",
];

/** Everything {@link writeMerge} writes, computed by {@link planMerge}. */
export interface MergePlan {
  /** The base folder. */
  base: string;
  /** The adapter folder. */
  adapter: string;
  /** `gpt2` or `llama`. */
  arch: string;
  /** config.json to write: the base's, without `quantization_config`, `torch_dtype` set. */
  config: Record<string, unknown>;
  /** The folder's dtype (its embedding's; bitsandbytes weights are written in it). */
  dtype: FloatDtype;
  /** Every tensor, under the base's own names. */
  tensors: Map<string, SafetensorsTensor>;
  /** Module paths whose weights got s·B·A. */
  merged: string[];
  /** LoRA rank r. */
  rank: number;
  /** LoRA α. */
  alpha: number;
  /** s = α/r (or α/√r). */
  scaling: number;
  /** The adapter's base format: `none` (f32) or the QLoRA format merged into de-quantized. */
  quant: BaseQuant;
  /** 4-bit block size and double quantization of that format (for messages). */
  blockSize: number;
  /** See {@link blockSize}. */
  doubleQuant: boolean;
  /** The bitsandbytes format of the base folder, or null for a float checkpoint. */
  bnbBase: string | null;
  /** Names of the base's files copied as they are. */
  copied: string[];
}

/** Throws unless `out` is absent or an empty directory (merge never overwrites a folder). */
export async function checkEmptyOut(out: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(out);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  if (!info.isDirectory) throw new Error(`${out} exists and is not a folder`);
  for await (const _ of Deno.readDir(out)) {
    throw new Error(`${out} exists and is not empty (merge writes a new folder; remove it first)`);
  }
}

/**
 * Loads base + adapter on the CPU and computes the merged folder's contents (nothing is
 * written). Throws a one-line error for a missing or malformed base or adapter, or an adapter
 * that does not fit the base (other architecture, other layer sizes, other rank).
 */
export async function planMerge(base: string, adapter: string): Promise<MergePlan> {
  const raw = await readHfConfig(base).catch((e) => {
    throw new Error(`base ${base}: ${(e as Error).message}`);
  });
  const loaded = await loadWithAdapter(base, adapter, cpu);
  const { model, peft } = loaded;
  const pc = loaded.adapterConfig!;
  try {
    const state = new Map<string, { shape: number[]; values: Float32Array | Float64Array }>();
    const linears = model.linears();
    const inLinear = (name: string) => [...linears.keys()].some((p) => name.startsWith(`${p}.`));
    for (const [name, t] of model.namedParameters()) {
      if (inLinear(name)) continue;
      state.set(name, { shape: [...t.shape], values: (await t.toArray()) as Float32Array });
    }
    const inOut = model.peftLayout.fanInFanOut; // GPT-2 Conv1D: weights stored [in, out]
    for (const [path, lin] of linears) {
      const b = lin instanceof LoraLinear ? lin.base : lin;
      const [O, I] = [b.outFeatures, b.inFeatures];
      let w: Float64Array; // in the stored layout
      if (b instanceof Linear) {
        if ((b.layout === "in_out") !== inOut) throw new Error(`${path}: unexpected layout`);
        w = Float64Array.from((await b.weight.toArray()) as Float32Array);
      } else if (!(b instanceof QuantLinear)) {
        throw new Error(`${path}: cannot merge into a ${b.constructor.name}`);
      } else {
        const d = dequantizeOnDevice(b.weight); // [O, I]
        const oi = (await d.toArray()) as Float32Array;
        d.dispose();
        w = new Float64Array(O * I);
        for (let o = 0; o < O; o++) {
          for (let i = 0; i < I; i++) w[inOut ? i * O + o : o * I + i] = oi[o * I + i];
        }
      }
      if (lin instanceof LoraLinear) {
        addDelta(
          w,
          (await lin.loraA.toArray()) as Float32Array,
          (await lin.loraB.toArray()) as Float32Array,
          { r: lin.opts.r, O, I, s: lin.scaling, inOut },
        );
      }
      state.set(`${path}.weight`, { shape: inOut ? [I, O] : [O, I], values: w });
      if (b.bias) {
        state.set(`${path}.bias`, {
          shape: [O],
          values: (await b.bias.toArray()) as Float32Array,
        });
      }
    }
    const { tensors, dtype } = await storedTensors(base, model.arch, state);
    const config: Record<string, unknown> = { ...raw };
    delete config.quantization_config;
    config.model_type ??= model.arch;
    config.torch_dtype = TORCH_DTYPES[dtype];
    const copied: string[] = [];
    for (const f of COPIED_FILES) if (await pathExists(`${base}/${f}`)) copied.push(f);
    const bnb = raw.quantization_config as Record<string, unknown> | undefined;
    return {
      base,
      adapter,
      arch: model.arch,
      config,
      dtype,
      tensors,
      merged: [...peft!.loraLayers.keys()],
      rank: pc.r ?? 8,
      alpha: pc.alpha ?? 16,
      scaling: [...peft!.loraLayers.values()][0].scaling,
      quant: pc.quant ?? "none",
      blockSize: pc.blockSize ?? 64,
      doubleQuant: pc.doubleQuant ?? true,
      bnbBase: bnb ? String(bnb.bnb_4bit_quant_type ?? "fp4") : null,
      copied,
    };
  } finally {
    model.dispose();
  }
}

const TORCH_DTYPES: Record<FloatDtype, string> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

/** w += s·B·A (float64), w in [O, I] or, with `inOut`, [I, O]. A [r, I], B [O, r]. */
function addDelta(
  w: Float64Array,
  A: Float32Array,
  B: Float32Array,
  d: { r: number; O: number; I: number; s: number; inOut: boolean },
): void {
  const { r, O, I, s, inOut } = d;
  for (let o = 0; o < O; o++) {
    for (let i = 0; i < I; i++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += B[o * r + k] * A[k * I + i];
      w[inOut ? i * O + o : o * I + i] += s * acc;
    }
  }
}

/**
 * The merged state under the base's stored names (`h.0.attn.c_attn.weight` stays without
 * `transformer.`), each in its stored dtype; bitsandbytes weights (and their companions, which
 * are dropped) become float tensors of the embedding's dtype. Buffers the model does not use
 * (causal masks, rotary inv_freq, a tied lm_head copy) are copied as stored.
 */
async function storedTensors(
  base: string,
  arch: string,
  state: Map<string, { shape: number[]; values: Float32Array | Float64Array }>,
): Promise<{ tensors: Map<string, SafetensorsTensor>; dtype: FloatDtype }> {
  const prefix = arch === "gpt2" ? "transformer." : "model.";
  const w = await HfWeights.open(base);
  try {
    const canonical = (s: string) => state.has(s) ? s : state.has(prefix + s) ? prefix + s : null;
    const embed = arch === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight";
    const embedStored = w.names().find((n) => canonical(n) === embed);
    const dtype = asFloat(embedStored ? w.info(embedStored).dtype : "F32") ?? "F32";
    const tensors = new Map<string, SafetensorsTensor>();
    const written = new Set<string>();
    for (const stored of w.names()) {
      if (isBnbCompanion(stored)) continue;
      const c = canonical(stored);
      if (c === null) {
        tensors.set(stored, await w.raw(stored));
        continue;
      }
      const t = state.get(c)!;
      tensors.set(stored, encodeFloats(asFloat(w.info(stored).dtype) ?? dtype, t.shape, t.values));
      written.add(c);
    }
    const lost = [...state.keys()].filter((n) => !written.has(n));
    if (lost.length) throw new Error(`${base}: no stored tensor for ${lost.join(", ")}`);
    return { tensors, dtype };
  } finally {
    w.close();
  }
}

function asFloat(dtype: string): FloatDtype | null {
  return dtype === "F32" || dtype === "F16" || dtype === "BF16" || dtype === "F64" ? dtype : null;
}

/**
 * Writes a {@link MergePlan} into `out` (created; it must be absent or empty): model.safetensors,
 * the copied tokenizer files, then config.json last, each file atomically.
 */
export async function writeMerge(plan: MergePlan, out: string): Promise<void> {
  await checkEmptyOut(out);
  await Deno.mkdir(out, { recursive: true });
  await writeSafetensors(`${out}/model.safetensors`, plan.tensors, {
    format: "pt",
    merged_by: "loralab merge",
    base: plan.base,
    adapter: plan.adapter,
  });
  for (const f of plan.copied) {
    await writeFileAtomic(
      `${out}/${f}`,
      await readFileChecked(`${plan.base}/${f}`, MAX_TEXT_BYTES),
    );
  }
  await writeJsonAtomic(`${out}/config.json`, plan.config);
}

/** {@link planMerge} then {@link writeMerge}: base + adapter → a merged model folder at `out`. */
export async function mergeAdapter(base: string, adapter: string, out: string): Promise<MergePlan> {
  await checkEmptyOut(out);
  const plan = await planMerge(base, adapter);
  await writeMerge(plan, out);
  return plan;
}
