/**
 * File formats: safetensors reading and writing.
 *
 * @module
 */

export * from "./safetensors.ts";
export * from "./atomic.ts";
export * from "./model_files.ts";
export * from "./hf.ts";
export * from "./bnb.ts";
