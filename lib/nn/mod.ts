/**
 * Modules: Linear, LayerNorm and the GPT model.
 *
 * @module
 */

export * from "./linear.ts";
export * from "./causal_lm.ts";
export * from "./gpt.ts";
export * from "./llama.ts";
export * from "./generate.ts";
