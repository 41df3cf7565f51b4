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
import { readSafetensors, tensorFromArray, writeSafetensors } from "../io/safetensors.ts";
import { toF32 } from "../io/hf.ts";
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

/** Reads and checks adapter_config.json; returns the PeftConfig to prepare a model with. */
export async function readAdapterConfig(dir: string): Promise<PeftConfig> {
  let j: AdapterConfigJson;
  try {
    j = JSON.parse(await Deno.readTextFile(`${dir}/adapter_config.json`));
  } catch (e) {
    throw new Error(
      `readAdapterConfig: cannot read ${dir}/adapter_config.json: ${(e as Error).message}`,
    );
  }
  if (j.peft_type !== "LORA") {
    throw new Error(`readAdapterConfig: peft_type ${j.peft_type} is not LORA`);
  }
  if (!Number.isInteger(j.r) || j.r < 1) throw new Error(`readAdapterConfig: bad r ${j.r}`);
  if (typeof j.target_modules === "string") {
    throw new Error(
      `readAdapterConfig: target_modules is a regular expression (${j.target_modules}); ` +
        "only a list of module names is supported",
    );
  }
  if (!Array.isArray(j.target_modules) || j.target_modules.some((t) => typeof t !== "string")) {
    throw new Error("readAdapterConfig: target_modules must be a list of names");
  }
  const extra = j as unknown as Record<string, unknown>;
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
    if (nonEmpty(extra[k])) {
      throw new Error(`readAdapterConfig: ${k} = ${JSON.stringify(extra[k])} is not supported`);
    }
  }
  if ((j.bias ?? "none") !== "none") {
    throw new Error(`readAdapterConfig: bias "${j.bias}" is not supported (only "none")`);
  }
  if (!(j.lora_alpha > 0)) throw new Error(`readAdapterConfig: bad lora_alpha ${j.lora_alpha}`);
  const ll = j.loralab ?? {};
  return {
    method: ll.method === "qlora" ? "qlora" : "lora",
    r: j.r,
    alpha: j.lora_alpha,
    dropout: j.lora_dropout ?? 0,
    rslora: j.use_rslora ?? false,
    targets: j.target_modules,
    quant: (ll.quant as PeftConfig["quant"]) ?? "none",
    blockSize: (ll.block_size as number) ?? 64,
    doubleQuant: (ll.double_quant as boolean) ?? true,
  };
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
  for (const [path, l] of pm.loraLayers) {
    const dev = l.loraA.backend;
    const a = file.tensors.get(`${PREFIX}${path}.lora_A.weight`)!;
    const b = file.tensors.get(`${PREFIX}${path}.lora_B.weight`)!;
    const newA = Tensor.fromArray(toF32(path, a), a.shape, { device: dev }).keep();
    const newB = Tensor.fromArray(toF32(path, b), b.shape, { device: dev }).keep();
    pm.trainable.set(`${path}.lora_A.weight`, newA);
    pm.trainable.set(`${path}.lora_B.weight`, newB);
    l.loraA.dispose();
    l.loraB.dispose();
    l.loraA = newA;
    l.loraB = newB;
  }
}
