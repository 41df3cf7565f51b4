/**
 * A model directory in Hugging Face's layout: `config.json` (the family's config, e.g.
 * GPT2Config fields), `model.safetensors` (the family's parameter names, F32) and
 * `tokenizer.json` (our tokenizer description), for the families with such a folder
 * (`Architecture.ownFolder`; GPT-2). `saveModel` writes each file atomically; `loadModel`
 * validates everything before building the model, and hands any other folder to the Hugging Face
 * loader (hf_load.ts).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { Tokenizer, TokenizerJSON } from "../data/tokenizer.ts";
import { tokenizerFromJSON } from "../data/tokenizer_files.ts";
import type { Architecture, OwnFolder } from "../models/architecture.ts";
import { archNamed, archOf, LEGACY_ARCHITECTURE, type ModelConfig } from "../models/registry.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { fmtShape, Tensor } from "../tensor.ts";
import { writeJsonAtomic } from "./atomic.ts";
import { checkFile, readJsonChecked } from "./read_file.ts";
import { checkConfigFitsFiles } from "./hf_config.ts";
import { type HfLoadOptions, loadHfModel } from "./hf_load.ts";
import {
  readSafetensors,
  type SafetensorsTensor,
  tensorFromArray,
  tensorView,
  writeSafetensors,
} from "./safetensors.ts";
import { blockwiseToBnb, type BnbConfig, bnbQuantizationConfig } from "./bnb.ts";
import { Linear } from "../nn/linear.ts";
import { quantizeBlockwise4 } from "../quant/blockwise.ts";

/** What {@link loadModel} returns. */
export interface LoadedModel {
  /** The model, on the requested backend (a GPT, a Llama, …: see lib/models/registry.ts). */
  model: CausalLM;
  /** Its tokenizer. */
  tokenizer: Tokenizer;
  /** Its config. */
  config: ModelConfig;
  /** The safetensors `__metadata__`. */
  metadata: Record<string, string>;
}

/** Host copies of every parameter, by the family's (Hugging Face) name (for checkpoints and files). */
export async function modelState(model: CausalLM): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of model.namedParameters()) {
    out.set(name, (await t.toArray()) as Float32Array);
  }
  return out;
}

/** A model `saveModel` can write: a {@link CausalLM} with its family's config (a GPT). */
export interface SavableModel extends CausalLM {
  /** The family's config (`configToHf` writes it as config.json). */
  readonly config: unknown;
}

/**
 * The registered family of a model, which must have loralab's own folder format (GPT-2 has;
 * other families are saved by merging into a Hugging Face folder, see lib/peft/merge.ts).
 */
function savableArch(model: SavableModel, what: string): Architecture {
  const arch = archNamed(model.arch);
  if (!arch.ownFolder) {
    throw new Error(`${what}: ${model.arch} models have no loralab model folder format`);
  }
  return arch;
}

/**
 * Writes config.json, model.safetensors and tokenizer.json into `dir` (created if needed), for
 * a family with loralab's own folder format (GPT-2).
 */
export async function saveModel(
  dir: string,
  model: SavableModel,
  tokenizer: Tokenizer,
  metadata: Record<string, string> = {},
): Promise<void> {
  const arch = savableArch(model, "saveModel");
  await Deno.mkdir(dir, { recursive: true });
  const tensors = new Map();
  const params = model.namedParameters();
  for (const [name, data] of await modelState(model)) {
    tensors.set(name, tensorFromArray("F32", [...params.get(name)!.shape], data));
  }
  await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt", ...metadata });
  await writeJsonAtomic(`${dir}/config.json`, arch.configToHf(model.config));
  await writeJsonAtomic(`${dir}/tokenizer.json`, tokenizer.toJSON());
}

/** Options of {@link saveBnbModel}. */
export interface SaveBnbOptions {
  /** `nf4` (default) or `fp4`. */
  quantType?: "nf4" | "fp4";
  /** Double quantization (bitsandbytes' `bnb_4bit_use_double_quant`). Default true. */
  doubleQuant?: boolean;
  /** Weights per absmax block (bitsandbytes: a power of two, 64 by default). Default 64. */
  blockSize?: number;
}

/**
 * Writes a model (of a family with loralab's own folder format: GPT-2) as a bitsandbytes 4-bit
 * checkpoint, the layout transformers writes for a model loaded with
 * `BitsAndBytesConfig(load_in_4bit=True)` (see `bnb.ts`): every block linear
 * quantized (NF4/FP4, double-quantized by default) as bitsandbytes' `Linear4bit` stores it,
 * embeddings, LayerNorms and biases F32; config.json with its `quantization_config`, and
 * tokenizer.json. A QLoRA-ready base: `loadModel` reads it back with the 4-bit weights as
 * stored, and transformers loads it with bitsandbytes installed.
 *
 * The block linears must be f32 {@link Linear}s (a model loaded without quantization, or with
 * its adapters merged); their weights are quantized from the host copy, one at a time.
 */
export async function saveBnbModel(
  dir: string,
  model: SavableModel,
  tokenizer: Tokenizer,
  opts: SaveBnbOptions = {},
  metadata: Record<string, string> = {},
): Promise<void> {
  const arch = savableArch(model, "saveBnbModel");
  const cfg: BnbConfig = {
    quantType: opts.quantType ?? "nf4",
    doubleQuant: opts.doubleQuant ?? true,
  };
  const blockSize = opts.blockSize ?? 64;
  const tensors = new Map<string, SafetensorsTensor>();
  const linears = model.linears();
  const params = model.namedParameters();
  const quantized = new Set<string>();
  for (const [path, lin] of linears) {
    if (!(lin instanceof Linear)) {
      throw new Error(
        `saveBnbModel: ${path} is a ${lin.constructor.name}, not an f32 Linear ` +
          `(save from f32 weights: load without quantization or merge the adapters first)`,
      );
    }
    const w = (await lin.weight.toArray()) as Float32Array;
    const [O, I] = [lin.outFeatures, lin.inFeatures];
    let oi = w; // [O, I], as bitsandbytes' Linear4bit stores it
    if (lin.layout === "in_out") {
      oi = new Float32Array(O * I);
      for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) oi[o * I + i] = w[i * O + o];
    }
    const q = quantizeBlockwise4(oi, [O, I], cfg.quantType, {
      blockSize,
      doubleQuant: cfg.doubleQuant,
    });
    for (const [n, t] of blockwiseToBnb(`${path}.weight`, q)) tensors.set(n, t);
    quantized.add(`${path}.weight`);
  }
  for (const [name, t] of params) {
    if (quantized.has(name)) continue;
    tensors.set(name, tensorFromArray("F32", [...t.shape], (await t.toArray()) as Float32Array));
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt", ...metadata });
  await writeJsonAtomic(`${dir}/config.json`, {
    ...arch.configToHf(model.config),
    torch_dtype: "float32",
    quantization_config: bnbQuantizationConfig(cfg),
  });
  await writeJsonAtomic(`${dir}/tokenizer.json`, tokenizer.toJSON());
}

/**
 * Reads a model directory onto `device`: one written by {@link saveModel}, or a Hugging Face
 * folder of any registered family's checkpoint (config.json's `model_type` / `architectures`
 * decide; see lib/io/hf_load.ts). `opts.quantize` quantizes the block linears while loading (HF
 * path).
 */
export async function loadModel(
  dir: string,
  device: Backend,
  opts: HfLoadOptions = {},
): Promise<LoadedModel> {
  const read = async (name: string) => {
    try {
      return await readJsonChecked(`${dir}/${name}`) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`loadModel: cannot read ${dir}/${name}: ${(e as Error).message}`);
    }
  };
  const raw = await read("config.json");
  const legacy = raw.model_type === undefined && raw.architectures === undefined;
  const arch = legacy ? LEGACY_ARCHITECTURE : archOf(raw);
  if (
    !arch.ownFolder ||
    !legacy && (!(await isLoralabFolder(dir)) ||
        (opts.quantize ?? "none") !== "none" || raw.quantization_config !== undefined)
  ) {
    return await loadHfModel(dir, device, opts);
  }
  // The same field checks as a Hugging Face config of the family (types, ranges, activation).
  const config = arch.configFromHf(raw);
  const tokenizer = tokenizerFromJSON((await read("tokenizer.json")) as TokenizerJSON);
  const vocabSize = arch.vocabSize(config);
  if (tokenizer.vocabSize > vocabSize) {
    throw new Error(
      `loadModel: tokenizer has ${tokenizer.vocabSize} tokens, the model only ${vocabSize}`,
    );
  }
  const file = await readSafetensors(`${dir}/model.safetensors`);
  checkShapes(dir, arch, arch.ownFolder, config, file.tensors);
  const state = new Map<string, Tensor>();
  for (const [name, t] of file.tensors) {
    if (t.dtype !== "F32") {
      throw new Error(`loadModel: ${name} is ${t.dtype}; only F32 is supported here`);
    }
    state.set(name, Tensor.fromArray(tensorView(t) as Float32Array, t.shape, { device }));
  }
  const model = arch.ownFolder.fromState(config, state, device);
  for (const t of state.values()) t.dispose(); // the model keeps its own references
  return { model, tokenizer, config: config as ModelConfig, metadata: file.metadata };
}

/**
 * The file's tensors must be exactly the config's parameters with their shapes (the family's
 * `extraNames`, e.g. GPT-2's `lm_head.weight` tied to wte, are allowed): checked before the
 * model is allocated, the parameter count against the file size first.
 */
function checkShapes(
  dir: string,
  arch: Architecture,
  own: OwnFolder<unknown, CausalLM>,
  c: unknown,
  tensors: Map<string, { shape: number[] }>,
) {
  let bytes = 0;
  for (const t of tensors.values()) bytes += 4 * t.shape.reduce((a, b) => a * b, 1);
  checkConfigFitsFiles(arch.paramCount(c), bytes, arch.dims(c), dir);
  const want = arch.expectedTensors(c);
  for (const name of tensors.keys()) {
    if (!own.extraNames.includes(name) && !want.has(name)) {
      throw new Error(`loadModel: ${dir}: unknown parameter ${name}`);
    }
  }
  for (const [name, shape] of want) { // in model order: the first problem named is the lowest
    const t = tensors.get(name);
    if (!t) throw new Error(`loadModel: ${dir}: missing parameter ${name}`);
    if (shape.join(",") !== t.shape.join(",")) {
      throw new Error(
        `loadModel: ${dir}: ${name} is ${fmtShape(t.shape)}, expected ${fmtShape(shape)} ` +
          "from config.json",
      );
    }
  }
}

/** A folder saveModel wrote: loralab's own tokenizer.json (with `type`) and model.safetensors. */
export async function isLoralabFolder(dir: string): Promise<boolean> {
  try {
    const tok = await readJsonChecked(`${dir}/tokenizer.json`) as { type?: unknown } | null;
    await checkFile(`${dir}/model.safetensors`);
    return typeof tok?.type === "string";
  } catch {
    return false;
  }
}
