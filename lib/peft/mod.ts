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
export * from "../api_types.ts";
