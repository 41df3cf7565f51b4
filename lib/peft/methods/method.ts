/**
 * The shape of a fine-tuning method: which base linears it trains (those stay f32; the others
 * may be stored quantized) and how it adds its trainable tensors to a {@link PeftModel}.
 *
 * @module
 */

import type { CausalLM } from "../../nn/causal_lm.ts";
import type { PeftConfig } from "../config.ts";
import type { CalibrationBatch, PeftModel } from "../peft_model.ts";

/** One fine-tuning method (see lib/peft/registry.ts). */
export interface PeftMethod {
  /** Whether `prepare` needs calibration batches (then `deno task train` does not offer it). */
  needsCalibration?: boolean;
  /** Whether the method trains the base linear at `path` (so it cannot be quantized). */
  trainsLinear(model: CausalLM, c: Required<PeftConfig>, path: string): boolean;
  /**
   * Adds the method's trainable tensors (and layers, adapters, masks) to `pm`, after the frozen
   * linears were quantized. `calibration` batches are for methods that need data (sparse).
   */
  prepare(
    pm: PeftModel,
    model: CausalLM,
    c: Required<PeftConfig>,
    calibration: readonly CalibrationBatch[],
  ): void | Promise<void>;
}
