/**
 * Parameter-efficient fine-tuning: LoRA/QLoRA, bottleneck adapters, BitFit, layer-wise and
 * sparse fine-tuning, and PEFT-format adapter files.
 *
 * @module
 */

export * from "../nn/quant_linear.ts";
export * from "./lora.ts";
export * from "./bottleneck.ts";
export * from "./apply.ts";
export * from "./peft_files.ts";

// Types from elsewhere in loralab that this module's API mentions, so that its documentation is
// complete when it is imported on its own (see deno.json "exports").
export type * from "../backend/backend.ts";
export type * from "../nn/causal_lm.ts";
export type * from "../nn/linear.ts";
export type * from "../tensor.ts";
export type { Rng } from "../rng.ts";
export type * from "../quant/device_weight.ts";
export type * from "../quant/packed.ts";
export type * from "../quant/weight.ts";
export type { CrossEntropyOptions } from "../ops/nn.ts";
export type * from "../data/tokenizer.ts";
export { BASE_QUANTS, type BaseQuant } from "../quant/formats/registry.ts";
