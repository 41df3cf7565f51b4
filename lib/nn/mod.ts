/**
 * Modules: Linear, LayerNorm, RMSNorm, the CausalLM interface, generation, and the models of
 * the registered families (GPT-2 and Llama, from lib/models/).
 *
 * @module
 */

export * from "./linear.ts";
export * from "./norms.ts";
export * from "./activations.ts";
export * from "./causal_lm.ts";
export * from "../models/gpt2/config.ts";
export * from "../models/gpt2/model.ts";
export * from "../models/llama/config.ts";
export * from "../models/llama/rope.ts";
export * from "../models/llama/model.ts";
export * from "./generate.ts";
