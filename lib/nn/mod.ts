/**
 * Modules: Linear, LayerNorm and the GPT model.
 *
 * @module
 */

export * from "./linear.ts";
export * from "./gpt.ts";
export * from "./generate.ts";
