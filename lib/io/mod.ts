/**
 * File formats: safetensors reading and writing.
 *
 * @module
 */

export * from "./safetensors.ts";
