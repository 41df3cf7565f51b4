/**
 * Moved to `formats/blockwise4.ts` (the NF4 / FP4 / int4 formats); this path re-exports it.
 *
 * @module
 */

export * from "./formats/blockwise4.ts";
