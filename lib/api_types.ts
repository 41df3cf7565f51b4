/**
 * The core types that every entry point's API mentions (backends and storages, tensors, models,
 * linears, quantized weights, tokenizers), re-exported by each `mod.ts` that deno.json exports,
 * so that each one's documentation is complete when it is imported on its own.
 *
 * @module
 */

export type * from "./backend/backend.ts";
export type * from "./nn/causal_lm.ts";
export type * from "./nn/linear.ts";
export type * from "./tensor.ts";
export type { Rng } from "./rng.ts";
export type * from "./quant/device_weight.ts";
export type * from "./quant/packed.ts";
export type * from "./quant/weight.ts";
export type { CrossEntropyOptions } from "./ops/nn.ts";
export type * from "./data/tokenizer.ts";
export { BASE_QUANTS, type BaseQuant } from "./quant/formats/registry.ts";
