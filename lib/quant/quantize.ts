/**
 * One entry point for every storage format: `FORMATS[format].quantize` (`formats/registry.ts`).
 *
 * @module
 */

import type { Blockwise4Weight } from "./formats/blockwise4.ts";
import type { F16Weight, F32Weight } from "./formats/float.ts";
import type { QuantizeOptions } from "./formats/format.ts";
import type { Int8Weight } from "./formats/int8.ts";
import { formatSpec } from "./formats/registry.ts";
import type { QuantFormat, QuantizedWeight } from "./weight.ts";

export type { QuantizeOptions };

/**
 * Stores `weights` in a 4-bit blockwise format.
 *
 * @example
 * ```ts
 * const q = quantize(new Float32Array(4096).fill(0.5), [64, 64], "nf4", { doubleQuant: true });
 * q.bitsPerParameter; // ≈ 4.13
 * ```
 */
export function quantize(
  weights: Float32Array,
  shape: readonly number[],
  format: "nf4" | "fp4" | "int4",
  opts?: QuantizeOptions,
): Blockwise4Weight;
/** Stores `weights` as int8 absmax, per tensor ("int8") or per row ("int8-row"). */
export function quantize(
  weights: Float32Array,
  shape: readonly number[],
  format: "int8" | "int8-row",
  opts?: QuantizeOptions,
): Int8Weight;
/** Stores `weights` as f16 or bf16 bits. */
export function quantize(
  weights: Float32Array,
  shape: readonly number[],
  format: "f16" | "bf16",
  opts?: QuantizeOptions,
): F16Weight;
/** Keeps a copy of `weights` as f32 (the baseline). */
export function quantize(
  weights: Float32Array,
  shape: readonly number[],
  format: "f32",
  opts?: QuantizeOptions,
): F32Weight;
/** Stores `weights` (Float32Array [numel], row-major, of the given shape) in `format`. */
export function quantize(
  weights: Float32Array,
  shape: readonly number[],
  format: QuantFormat,
  opts?: QuantizeOptions,
): QuantizedWeight;
export function quantize(
  weights: Float32Array,
  shape: readonly number[],
  format: QuantFormat,
  opts: QuantizeOptions = {},
): QuantizedWeight {
  const spec = formatSpec(format);
  if (!spec) throw new Error(`quantize: unknown format ${JSON.stringify(format)}`);
  return spec.quantize(weights, shape, opts);
}
