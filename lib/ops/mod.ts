/**
 * All forward ops, on either backend.
 *
 * @module
 */

export * from "./matmul.ts";
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./shape.ts";
export * from "./nn.ts";
export * from "./attention.ts";
export * from "./attention_select.ts";
export * from "./attention_tune.ts";
export * from "./broadcast.ts";

export * from "./dropout.ts";
export * from "./abs.ts";
