/**
 * Model families: the {@link Architecture} interface and the registry of families (GPT-2,
 * Llama). The models themselves (GPT, Llama, their configs and blocks) are exported by
 * lib/nn/mod.ts as well.
 *
 * @module
 */

export * from "./architecture.ts";
export * from "./registry.ts";
export * from "./gpt2/mod.ts";
export * from "./llama/mod.ts";
