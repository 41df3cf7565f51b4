/**
 * Moved to `formats/float.ts` (the f32 / f16 / bf16 formats); this path re-exports it.
 *
 * @module
 */

export * from "./formats/float.ts";
