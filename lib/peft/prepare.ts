/**
 * One API for every fine-tuning method of the workbook: `preparePeft(model, config)` freezes,
 * quantizes and wraps a model (GPT-2 or Llama, any {@link CausalLM}) in place and returns the trainable parameters, the honest parameter
 * and byte counts, and (for the sparse method) the gradient masks.
 *
 * Methods:
 * - `lora`, `qlora`: rank-r adapters on the targeted linears; qlora stores every block linear of
 *   the frozen base in NF4 with double quantization (any `quant` format may be chosen for lora).
 * - `full`: every parameter trains (no quantization possible), a tensor stored in row chunks
 *   (over the backend's largest buffer, e.g. GPT-2's token embedding on lavapipe) chunk by chunk.
 * - `adapter`: bottleneck adapters after attention and MLP of every block.
 * - `bitfit`: only biases (of linears and LayerNorms) train.
 * - `freeze-lower`: blocks below `layers` are frozen; the rest and the final norm train, and an
 *   untied output projection (Llama's lm_head); a tied one (the token embedding) trains only
 *   with `layers = n_layer`, i.e. only the head: final norm and the tied embedding.
 * - `sparse`: the top `sparsity` fraction of block weights by accumulated |gradient| on a few
 *   calibration batches train; all other entries are masked out of every update.
 *
 * This file holds {@link preparePeft}: resolve the config, check a base loaded quantized, quantize
 * the frozen block linears, then the method's own `prepare` (lib/peft/methods/, one file each;
 * lib/peft/registry.ts names them).
 *
 * @module
 */

import type { CausalLM } from "../nn/causal_lm.ts";
import type { Linear, LinearLike } from "../nn/linear.ts";
import { QuantLinear } from "../nn/quant_linear.ts";
import { type PeftConfig, resolveConfig } from "./config.ts";
import { LoraLinear } from "./lora.ts";
import { type CalibrationBatch, PeftModel } from "./peft_model.ts";
import { PEFT_METHODS } from "./registry.ts";

/**
 * Prepares `model` in place for `config.method` (see the module docs) and returns the
 * {@link PeftModel}. `calibration` batches are required by `sparse`.
 */
export async function preparePeft(
  model: CausalLM,
  config: PeftConfig,
  calibration: readonly CalibrationBatch[] = [],
): Promise<PeftModel> {
  const c = resolveConfig(model, config);
  const pm = new PeftModel(model, c);
  const linears = model.linears();
  const trainableLinear = (path: string) => PEFT_METHODS[c.method].trainsLinear(model, c, path);
  // A base loaded already quantized (loadModel's `quantize`) must be frozen, in the same format.
  for (const [path, lin] of linears) {
    if (!(lin instanceof QuantLinear)) continue;
    if (trainableLinear(path)) {
      throw new Error(
        `preparePeft: ${path} was loaded quantized (${lin.weight.format}) but ${c.method} ` +
          `trains it; load the base in f32`,
      );
    }
    if (
      lin.weight.format !== c.quant && !(c.quant === "int8" && lin.weight.format === "int8-row")
    ) {
      throw new Error(
        `preparePeft: ${path} was loaded as ${lin.weight.format}, the config asks for ${c.quant}`,
      );
    }
  }
  // 1. Quantize the frozen block linears.
  if (c.quant !== "none") {
    for (const [path, lin] of linears) {
      if (trainableLinear(path) || lin instanceof QuantLinear) continue;
      const q = await QuantLinear.fromLinear(lin as Linear, {
        format: c.quant,
        blockSize: c.blockSize,
        doubleQuant: c.doubleQuant,
      });
      model.setLinear(path, q);
      (lin as Linear).weight.dispose(); // the f32 copy is gone: only the packed weight remains
    }
  }
  await PEFT_METHODS[c.method].prepare(pm, model, c, calibration);
  return pm;
}

/** Convenience for notebooks and the CLI: the linear layers with their kinds. */
export function describeLinears(model: CausalLM): { path: string; kind: string }[] {
  return [...model.linears()].map(([path, l]: [string, LinearLike]) => ({
    path,
    kind: l instanceof LoraLinear
      ? `LoRA r=${l.opts.r} on ${l.base instanceof QuantLinear ? l.base.weight.format : "f32"}`
      : l instanceof QuantLinear
      ? `frozen ${l.weight.format}`
      : "f32",
  }));
}
