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
