/**
 * Every storage format, one line each. `quantize`, `packWeight`, `makeDecoder` and the WGSL
 * kernels look formats up here; a new format is one file in this folder and one line below
 * (plus its name in the `QuantFormat` union of `weight.ts`, which makes the type checker ask for
 * the line).
 *
 * @module
 */

import type { QuantFormat } from "../weight.ts";
import { fp4Format, int4Format, nf4Format } from "./blockwise4.ts";
import type { QuantFormatSpec } from "./format.ts";
import { bf16Format, f16Format, f32Format } from "./float.ts";
import { int8Format, int8RowFormat } from "./int8.ts";

/** The spec of each storage format, by name. */
export const FORMATS: Readonly<Record<QuantFormat, QuantFormatSpec>> = Object.freeze({
  f32: f32Format,
  f16: f16Format,
  bf16: bf16Format,
  int8: int8Format,
  "int8-row": int8RowFormat,
  nf4: nf4Format,
  fp4: fp4Format,
  int4: int4Format,
});

/** The spec of `format`, or undefined for a name that is not a format. */
export function formatSpec(format: string): QuantFormatSpec | undefined {
  return Object.hasOwn(FORMATS, format) ? FORMATS[format as QuantFormat] : undefined;
}

/**
 * The formats a frozen base weight may be stored in (`--quant`, `QuantLinear`), "none" keeping
 * it as it is.
 */
export const BASE_QUANTS = ["nf4", "fp4", "int8", "f16", "none"] as const;

/** One of {@link BASE_QUANTS}. */
export type BaseQuant = typeof BASE_QUANTS[number];
