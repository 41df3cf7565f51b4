/**
 * Adapter files in Hugging Face PEFT's format: `adapter_config.json` and
 * `adapter_model.safetensors` with keys `base_model.model.<module path>.lora_A.weight` [r, in] and
 * `…lora_B.weight` [out, r]. Module paths are the architecture's (`transformer.h.0.attn.c_attn` for
 * GPT-2, `model.layers.0.self_attn.q_proj` for Llama). For GPT-2's Conv1D layers `fan_in_fan_out`
 * is true (PEFT transposes the base weight, never the adapter); for Llama's nn.Linear it is false.
 * Python users can load these with `PeftModel.from_pretrained`, and adapters PEFT wrote (F32, F16
 * or BF16) load here.
 *
 * @module
 */

import { writeJsonAtomic } from "../io/atomic.ts";
import { readJsonChecked } from "../io/read_file.ts";
import {
  readSafetensors,
  type SafetensorsTensor,
  tensorFromArray,
  toF32,
  writeSafetensors,
} from "../io/safetensors.ts";
import { LazySafetensors } from "../io/lazy_safetensors.ts";
import { fmtShape, Tensor } from "../tensor.ts";
import type { PeftConfig, PeftModel } from "./apply.ts";

/** The fields of PEFT's LoraConfig that loralab writes and reads. */
export interface AdapterConfigJson {
  /** Always "LORA". */
  peft_type: "LORA";
  /** Always "CAUSAL_LM". */
  task_type: "CAUSAL_LM";
  /** Rank. */
  r: number;
  /** α. */
  lora_alpha: number;
  /** Adapter-input dropout. */
  lora_dropout: number;
  /** Target module names. */
  target_modules: string[];
  /** Bias handling ("none": biases stay frozen). */
  bias: "none";
  /** α/√r scaling. */
  use_rslora: boolean;
  /** True for GPT-2's Conv1D ([in, out]) base weights. */
  fan_in_fan_out: boolean;
  /** Where the base model came from. */
  base_model_name_or_path: string;
  /** Saved for inference. */
  inference_mode: boolean;
  /** Whether LoRA's A/B init was used (PEFT field). */
  init_lora_weights: boolean;
  /** loralab's extras: quantization of the base during training. */
  loralab?: Record<string, unknown>;
}

const PREFIX = "base_model.model.";

/** Writes adapter_config.json and adapter_model.safetensors of a LoRA/QLoRA model into `dir`. */
export async function saveAdapter(dir: string, pm: PeftModel, baseModel: string): Promise<void> {
  const c = pm.config;
  if (c.method !== "lora" && c.method !== "qlora") {
    throw new Error(`saveAdapter: PEFT adapter files hold LoRA adapters, not ${c.method}`);
  }
  await Deno.mkdir(dir, { recursive: true });
  const tensors = new Map();
  for (const [path, l] of pm.loraLayers) {
    for (const [n, t] of [["lora_A", l.loraA], ["lora_B", l.loraB]] as const) {
      tensors.set(
        `${PREFIX}${path}.${n}.weight`,
        tensorFromArray("F32", [...t.shape], (await t.toArray()) as Float32Array),
      );
    }
  }
  await writeSafetensors(`${dir}/adapter_model.safetensors`, tensors, { format: "pt" });
  const cfg: AdapterConfigJson = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    r: c.r,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    target_modules: c.targets,
    bias: "none",
    use_rslora: c.rslora,
    fan_in_fan_out: pm.model.peftLayout.fanInFanOut,
    base_model_name_or_path: baseModel,
    inference_mode: true,
    init_lora_weights: true,
    loralab: {
      method: c.method,
      quant: c.quant,
      block_size: c.blockSize,
      double_quant: c.doubleQuant,
    },
  };
  await writeJsonAtomic(`${dir}/adapter_config.json`, cfg);
}

/** Base-weight formats an adapter_config.json's `loralab.quant` may name. */
const ADAPTER_QUANTS = ["nf4", "fp4", "int8", "f16", "none"] as const;

/**
 * Reads and checks adapter_config.json; returns the PeftConfig to prepare a model with. Every
 * field read is checked for type, range and supported value (one error naming the field), and
 * `r` is checked against the lora_A tensors' shapes in adapter_model.safetensors (whose header is
 * read, not its data), so a config cannot make the model allocate adapters its file does not
 * hold.
 */
export async function readAdapterConfig(dir: string): Promise<PeftConfig> {
  const path = `${dir}/adapter_config.json`;
  let raw: unknown;
  try {
    raw = await readJsonChecked(path);
  } catch (e) {
    throw new Error(`readAdapterConfig: cannot read ${path}: ${(e as Error).message}`);
  }
  const c = parseAdapterConfig(raw, path);
  await checkRank(dir, c.r);
  return c;
}

/**
 * Validates a parsed adapter_config.json (see {@link readAdapterConfig}); `where` names the file
 * in errors.
 */
export function parseAdapterConfig(
  raw: unknown,
  where = "adapter_config.json",
): PeftConfig & { r: number } {
  const bad = (field: string, v: unknown, want: string): never => {
    throw new Error(`readAdapterConfig: ${where}: ${field} = ${show(v)}: expected ${want}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error(`readAdapterConfig: ${where} is not a JSON object`);
  }
  const j = raw as Record<string, unknown>;
  if (j.peft_type !== "LORA") {
    throw new Error(`readAdapterConfig: peft_type ${show(j.peft_type)} is not LORA`);
  }
  const r = j.r;
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1) {
    throw new Error(`readAdapterConfig: bad r ${show(r)} (expected a positive integer)`);
  }
  if (typeof j.target_modules === "string") {
    throw new Error(
      `readAdapterConfig: target_modules is a regular expression (${j.target_modules}); ` +
        "only a list of module names is supported",
    );
  }
  const targets = j.target_modules;
  if (
    !Array.isArray(targets) || targets.length === 0 ||
    targets.some((t) => typeof t !== "string" || t === "")
  ) {
    throw new Error("readAdapterConfig: target_modules must be a list of names");
  }
  const nonEmpty = (v: unknown) =>
    v != null && v !== false &&
    !(typeof v === "object" && Object.keys(v as object).length === 0);
  for (
    const k of [
      "use_dora",
      "rank_pattern",
      "alpha_pattern",
      "modules_to_save",
      "layers_to_transform",
    ]
  ) {
    if (nonEmpty(j[k])) {
      throw new Error(`readAdapterConfig: ${k} = ${JSON.stringify(j[k])} is not supported`);
    }
  }
  if ((j.bias ?? "none") !== "none") {
    throw new Error(`readAdapterConfig: bias ${show(j.bias)} is not supported (only "none")`);
  }
  const alpha = j.lora_alpha;
  if (typeof alpha !== "number" || !(alpha > 0) || !Number.isFinite(alpha)) {
    throw new Error(`readAdapterConfig: bad lora_alpha ${show(alpha)} (expected a number > 0)`);
  }
  const dropout = j.lora_dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
    bad("lora_dropout", dropout, "a number in [0, 1)");
  }
  const rslora = j.use_rslora ?? false;
  if (typeof rslora !== "boolean") bad("use_rslora", rslora, "true or false");
  if (j.fan_in_fan_out !== undefined && typeof j.fan_in_fan_out !== "boolean") {
    bad("fan_in_fan_out", j.fan_in_fan_out, "true or false");
  }
  const ll = j.loralab === undefined ? {} : j.loralab;
  if (typeof ll !== "object" || ll === null || Array.isArray(ll)) {
    bad("loralab", ll, "an object (or no such field)");
  }
  const x = ll as Record<string, unknown>;
  const method = x.method ?? "lora";
  if (method !== "lora" && method !== "qlora") bad("loralab.method", method, '"lora" or "qlora"');
  const quant = x.quant ?? "none";
  if (!(ADAPTER_QUANTS as readonly unknown[]).includes(quant)) {
    bad("loralab.quant", quant, `one of ${ADAPTER_QUANTS.join(", ")}`);
  }
  if (method === "qlora" && quant === "none") {
    bad("loralab.quant", quant, "a quantized format for a qlora adapter");
  }
  const blockSize = x.block_size ?? 64;
  if (
    typeof blockSize !== "number" || !Number.isInteger(blockSize) || blockSize < 32 ||
    blockSize > 4096 || blockSize % 8 !== 0
  ) {
    bad("loralab.block_size", blockSize, "a multiple of 8 in [32, 4096]");
  }
  const doubleQuant = x.double_quant ?? true;
  if (typeof doubleQuant !== "boolean") bad("loralab.double_quant", doubleQuant, "true or false");
  return {
    method: method as "lora" | "qlora",
    r,
    alpha,
    dropout: dropout as number,
    rslora: rslora as boolean,
    targets: targets as string[],
    quant: quant as PeftConfig["quant"],
    blockSize: blockSize as number,
    doubleQuant: doubleQuant as boolean,
  };
}

/** A value as shown in an error: JSON, cut short. */
function show(v: unknown): string {
  const s = v === undefined ? "undefined" : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Every lora_A [r, in] / lora_B [out, r] in the weights file must have the config's rank. */
async function checkRank(dir: string, r: number): Promise<void> {
  const path = `${dir}/adapter_model.safetensors`;
  let file: LazySafetensors;
  try {
    file = await LazySafetensors.open(path);
  } catch (e) {
    throw new Error(`readAdapterConfig: ${(e as Error).message}`);
  }
  file.close();
  for (const [key, t] of file.tensors) {
    const rank = key.endsWith(".lora_A.weight")
      ? t.shape[0]
      : key.endsWith(".lora_B.weight")
      ? t.shape[1]
      : r;
    if (t.shape.length !== 2 || rank !== r) {
      throw new Error(
        `readAdapterConfig: adapter_config.json says r = ${r}, but ${key} in ${path} is ` +
          `${fmtShape(t.shape)}`,
      );
    }
  }
}

/**
 * Loads adapter weights from `dir` into a model prepared with a matching config. Every key must
 * name a LoRA layer of the model with the right shape; every LoRA layer must be present.
 */
export async function loadAdapter(dir: string, pm: PeftModel): Promise<void> {
  const file = await readSafetensors(`${dir}/adapter_model.safetensors`);
  const want = new Map<string, Tensor>();
  for (const [path, l] of pm.loraLayers) {
    want.set(`${PREFIX}${path}.lora_A.weight`, l.loraA);
    want.set(`${PREFIX}${path}.lora_B.weight`, l.loraB);
  }
  for (const [key, t] of file.tensors) {
    const own = want.get(key);
    if (!own) throw new Error(`loadAdapter: ${key} names no LoRA layer of this model`);
    if (!["F32", "F16", "BF16"].includes(t.dtype)) {
      throw new Error(`loadAdapter: ${key} is ${t.dtype}, expected F32, F16 or BF16`);
    }
    if (fmtShape(t.shape) !== fmtShape(own.shape)) {
      const hint = key.endsWith("lora_A.weight") || key.endsWith("lora_B.weight")
        ? " (wrong rank or layer size?)"
        : "";
      throw new Error(
        `loadAdapter: ${key} is ${fmtShape(t.shape)}, expected ${fmtShape(own.shape)}${hint}`,
      );
    }
  }
  for (const key of want.keys()) {
    if (!file.tensors.has(key)) throw new Error(`loadAdapter: ${key} is missing from the file`);
  }
  for (const [key, t] of file.tensors) finite(key, t); // all checked before any is replaced
  for (const [path, l] of pm.loraLayers) {
    const dev = l.loraA.backend;
    const a = file.tensors.get(`${PREFIX}${path}.lora_A.weight`)!;
    const b = file.tensors.get(`${PREFIX}${path}.lora_B.weight`)!;
    const newA = Tensor.fromArray(finite(`${PREFIX}${path}.lora_A.weight`, a), a.shape, {
      device: dev,
    }).keep();
    const newB = Tensor.fromArray(finite(`${PREFIX}${path}.lora_B.weight`, b), b.shape, {
      device: dev,
    }).keep();
    pm.trainable.set(`${path}.lora_A.weight`, newA);
    pm.trainable.set(`${path}.lora_B.weight`, newB);
    l.loraA.dispose();
    l.loraB.dispose();
    l.loraA = newA;
    l.loraB = newB;
  }
}

/** A tensor's values as f32; NaN or ±Inf anywhere is an error naming the tensor and index. */
function finite(key: string, t: SafetensorsTensor): Float32Array {
  const v = toF32(key, t);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) {
      throw new Error(
        `loadAdapter: ${key} holds non-finite values (${v[i]} at index ${i}); ` +
          "the adapter file is damaged or came from a diverged run",
      );
    }
  }
  return v;
}
