/**
 * File formats: safetensors reading and writing, model and adapter folders, and the one safe way
 * to read a file the user named (read_file.ts).
 *
 * @module
 */

export * from "./safetensors.ts";
export * from "./atomic.ts";
export * from "./model_files.ts";
export * from "./hf.ts";
export * from "./read_file.ts";
export * from "./bnb.ts";
export * from "./encode_float.ts";

// Types from elsewhere in loralab that this module's API mentions, so that its documentation is
// complete when it is imported on its own (see deno.json "exports").
export * from "../api_types.ts";
export type * from "../quant/blockwise.ts";
export type * from "../quant/double_quant.ts";
export type { GPTConfig } from "../models/gpt2/config.ts";
export type { LlamaConfig } from "../models/llama/config.ts";
export { ARCHITECTURES, type ModelConfig } from "../models/registry.ts";
export type * from "../models/architecture.ts";
export type { RopeScaling } from "../models/llama/config.ts";
export type { Format4 } from "../quant/codes.ts";
export type * from "../quant/formats/format.ts";
