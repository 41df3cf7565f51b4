/**
 * A model directory in Hugging Face's layout: `config.json` (GPT2Config fields),
 * `model.safetensors` (GPT-2 parameter names, F32) and `tokenizer.json` (our tokenizer
 * description). `saveModel` writes each file atomically; `loadModel` validates everything before
 * building the model.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { Tokenizer, TokenizerJSON } from "../data/tokenizer.ts";
import { tokenizerFromJSON } from "../data/tokenizer_files.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { GPT, type GPTConfig } from "../nn/gpt.ts";
import type { LlamaConfig } from "../nn/llama.ts";
import { fmtShape, Tensor } from "../tensor.ts";
import { writeJsonAtomic } from "./atomic.ts";
import { checkFile, readJsonChecked } from "./read_file.ts";
import {
  checkConfigFitsFiles,
  gpt2ConfigFromHf,
  gpt2Dims,
  gpt2Expected,
  gpt2ParamCount,
  hfArch,
  type HfLoadOptions,
  loadHfModel,
} from "./hf.ts";
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
  /** The model, on the requested backend (a {@link GPT} or a Llama). */
  model: CausalLM;
  /** Its tokenizer. */
  tokenizer: Tokenizer;
  /** Its config. */
  config: GPTConfig | LlamaConfig;
  /** The safetensors `__metadata__`. */
  metadata: Record<string, string>;
}

/** Host copies of every parameter, by GPT-2 name (for checkpoints and files). */
export async function modelState(model: CausalLM): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of model.namedParameters()) {
    out.set(name, (await t.toArray()) as Float32Array);
  }
  return out;
}

/** Writes config.json, model.safetensors and tokenizer.json into `dir` (created if needed). */
export async function saveModel(
  dir: string,
  model: GPT,
  tokenizer: Tokenizer,
  metadata: Record<string, string> = {},
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const tensors = new Map();
  const params = model.namedParameters();
  for (const [name, data] of await modelState(model)) {
    tensors.set(name, tensorFromArray("F32", [...params.get(name)!.shape], data));
  }
  await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt", ...metadata });
  await writeJsonAtomic(`${dir}/config.json`, gpt2ConfigJson(model.config));
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
 * Writes a GPT model as a bitsandbytes 4-bit checkpoint, the layout transformers writes for a
 * model loaded with `BitsAndBytesConfig(load_in_4bit=True)` (see `bnb.ts`): every block linear
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
  model: GPT,
  tokenizer: Tokenizer,
  opts: SaveBnbOptions = {},
  metadata: Record<string, string> = {},
): Promise<void> {
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
    ...gpt2ConfigJson(model.config),
    torch_dtype: "float32",
    quantization_config: bnbQuantizationConfig(cfg),
  });
  await writeJsonAtomic(`${dir}/tokenizer.json`, tokenizer.toJSON());
}

/**
 * Reads a model directory onto `device`: one written by {@link saveModel}, or a Hugging Face
 * folder of a GPT-2 or Llama checkpoint (config.json's `model_type` / `architectures` decide;
 * see lib/io/hf.ts). `opts.quantize` quantizes the block linears while loading (HF path).
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
  if (
    !legacy && (hfArch(raw) !== "gpt2" || !(await isLoralabFolder(dir)) ||
      (opts.quantize ?? "none") !== "none" || raw.quantization_config !== undefined)
  ) {
    return await loadHfModel(dir, device, opts);
  }
  // The same field checks as a Hugging Face GPT-2 config (types, ranges, activation).
  const config: GPTConfig = gpt2ConfigFromHf(raw);
  const tokenizer = tokenizerFromJSON((await read("tokenizer.json")) as TokenizerJSON);
  if (tokenizer.vocabSize > config.vocab_size) {
    throw new Error(
      `loadModel: tokenizer has ${tokenizer.vocabSize} tokens, the model only ${config.vocab_size}`,
    );
  }
  const file = await readSafetensors(`${dir}/model.safetensors`);
  checkShapes(dir, config, file.tensors);
  const state = new Map<string, Tensor>();
  for (const [name, t] of file.tensors) {
    if (t.dtype !== "F32") {
      throw new Error(`loadModel: ${name} is ${t.dtype}; only F32 is supported here`);
    }
    state.set(name, Tensor.fromArray(tensorView(t) as Float32Array, t.shape, { device }));
  }
  const model = GPT.fromState(config, state, device);
  for (const t of state.values()) t.dispose(); // the model keeps its own references
  return { model, tokenizer, config, metadata: file.metadata };
}

/**
 * The file's tensors must be exactly the config's parameters with their shapes (an extra
 * `lm_head.weight`, tied to wte, is allowed): checked before the model is allocated, the
 * parameter count against the file size first.
 */
function checkShapes(dir: string, c: GPTConfig, tensors: Map<string, { shape: number[] }>) {
  let bytes = 0;
  for (const t of tensors.values()) bytes += 4 * t.shape.reduce((a, b) => a * b, 1);
  checkConfigFitsFiles(gpt2ParamCount(c), bytes, gpt2Dims(c), dir);
  const want = gpt2Expected(c);
  for (const name of tensors.keys()) {
    if (name !== "lm_head.weight" && !want.has(name)) {
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
async function isLoralabFolder(dir: string): Promise<boolean> {
  try {
    const tok = await readJsonChecked(`${dir}/tokenizer.json`) as { type?: unknown } | null;
    await checkFile(`${dir}/model.safetensors`);
    return typeof tok?.type === "string";
  } catch {
    return false;
  }
}

/** config.json of a GPT-2 model as Hugging Face's GPT2Config writes it (tied embeddings). */
function gpt2ConfigJson(c: GPTConfig): Record<string, unknown> {
  return {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    ...c,
    layer_norm_epsilon: c.layer_norm_epsilon ?? 1e-5,
    tie_word_embeddings: true,
    activation_function: "gelu_new",
  };
}
