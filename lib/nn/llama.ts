/**
 * Moved to lib/models/llama/ (config.ts, rope.ts, model.ts), with RMSNorm in norms.ts and SiLU
 * in activations.ts; this path re-exports them for existing importers.
 *
 * @module
 */

export * from "../models/llama/config.ts";
export * from "../models/llama/rope.ts";
export * from "../models/llama/model.ts";
export * from "./norms.ts";
export * from "./activations.ts";
