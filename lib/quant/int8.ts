/**
 * Moved to `formats/int8.ts` (the int8 / int8-row formats); this path re-exports it.
 *
 * @module
 */

export * from "./formats/int8.ts";
