/**
 * The fine-tuning methods' shared vocabulary: {@link Method}, the settings {@link PeftConfig}
 * with their defaults ({@link resolveConfig}), and target matching.
 *
 * @module
 */

import type { CausalLM } from "../nn/causal_lm.ts";
import type { BaseQuant } from "../nn/quant_linear.ts";

/** Fine-tuning methods. */
export type Method = "lora" | "qlora" | "full" | "adapter" | "bitfit" | "freeze-lower" | "sparse";

/** All methods, for flag validation. */
export const METHODS: readonly Method[] = [
  "qlora",
  "lora",
  "full",
  "adapter",
  "bitfit",
  "freeze-lower",
  "sparse",
];

/** Settings of {@link preparePeft}; unset fields take the method's defaults. */
export interface PeftConfig {
  /** The method. */
  method: Method;
  /** LoRA rank. Default 8. */
  r?: number;
  /** LoRA α. Default 16. */
  alpha?: number;
  /** Dropout on the LoRA input. Default 0.05. */
  dropout?: number;
  /** α/√r scaling. Default false. */
  rslora?: boolean;
  /**
   * Module names or suffixes to adapt (PEFT's target_modules), or ["all-linear"]. Default: the
   * architecture's block linears (`c_attn,c_proj,c_fc` for GPT-2, `q_proj,…,down_proj` for Llama).
   */
  targets?: string[];
  /** Storage of the frozen base linears. Default nf4 for qlora, none otherwise. */
  quant?: BaseQuant;
  /** 4-bit block size. Default 64. */
  blockSize?: number;
  /** Double quantization of 4-bit scales. Default true. */
  doubleQuant?: boolean;
  /** Bottleneck width of `adapter`. Default 16. */
  adapterSize?: number;
  /** Frozen lower blocks of `freeze-lower`. Default ⌊n_layer / 2⌋. */
  layers?: number;
  /** Fraction of block weights trained by `sparse`. Default 0.01. */
  sparsity?: number;
  /** Seed of adapter initialisation and dropout. Default 0. */
  seed?: number;
}

/** Default targets of GPT-2: every linear layer of its blocks (the model's `peftLayout` gives each architecture's). */
export const DEFAULT_TARGETS = ["c_attn", "c_proj", "c_fc"];

/** Whether a module path matches PEFT-style targets (exact name or `.`-suffix). */
export function matchesTarget(path: string, targets: readonly string[]): boolean {
  return targets.some((t) => t === "all-linear" || path === t || path.endsWith(`.${t}`));
}

/**
 * `config` with every default filled in for `model`, checked: qlora needs a quantized base,
 * full and sparse an f32 one; layers, sparsity and dropout in range.
 */
export function resolveConfig(model: CausalLM, c: PeftConfig): Required<PeftConfig> {
  const m = c.method;
  if (!METHODS.includes(m)) throw new Error(`preparePeft: unknown method ${m}`);
  const full: Required<PeftConfig> = {
    method: m,
    r: c.r ?? 8,
    alpha: c.alpha ?? 16,
    dropout: c.dropout ?? 0.05,
    rslora: c.rslora ?? false,
    targets: c.targets ?? [...model.peftLayout.defaultTargets],
    quant: c.quant ?? (m === "qlora" ? "nf4" : "none"),
    blockSize: c.blockSize ?? 64,
    doubleQuant: c.doubleQuant ?? true,
    adapterSize: c.adapterSize ?? 16,
    layers: c.layers ?? Math.floor(model.numLayers / 2),
    sparsity: c.sparsity ?? 0.01,
    seed: c.seed ?? 0,
  };
  if (m === "qlora" && full.quant === "none") {
    throw new Error("preparePeft: qlora needs a quantized base (quant nf4, fp4, int8 or f16)");
  }
  if ((m === "full" || m === "sparse") && full.quant !== "none") {
    throw new Error(`preparePeft: ${m} trains the base weights, which must stay f32 (quant none)`);
  }
  if (!Number.isInteger(full.layers) || full.layers < 0 || full.layers > model.numLayers) {
    throw new RangeError(
      `preparePeft: layers ${full.layers} must be in [0, ${model.numLayers}]`,
    );
  }
  if (!(full.sparsity > 0 && full.sparsity <= 1)) {
    throw new RangeError(`preparePeft: sparsity ${full.sparsity} must be in (0, 1]`);
  }
  if (!(full.dropout >= 0 && full.dropout < 1)) {
    throw new RangeError(`preparePeft: dropout ${full.dropout} must be in [0, 1)`);
  }
  return full;
}
