/**
 * One entry point for every storage format.
 *
 * @module
 */

import { type Blockwise4Options, type Blockwise4Weight, quantizeBlockwise4 } from "./blockwise.ts";
import { type F16Weight, F32Weight, quantizeBF16, quantizeF16 } from "./float.ts";
import { type Int8Weight, quantizeInt8, quantizeInt8Rows } from "./int8.ts";
import type { QuantFormat, QuantizedWeight } from "./weight.ts";

/** Options of {@link quantize}; only the 4-bit formats read them. */
export type QuantizeOptions = Blockwise4Options;

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
  switch (format) {
    case "f32":
      return new F32Weight(weights, shape);
    case "f16":
      return quantizeF16(weights, shape);
    case "bf16":
      return quantizeBF16(weights, shape);
    case "int8":
      return quantizeInt8(weights, shape);
    case "int8-row":
      return quantizeInt8Rows(weights, shape);
    case "nf4":
    case "fp4":
    case "int4":
      return quantizeBlockwise4(weights, shape, format, opts);
    default:
      throw new Error(`quantize: unknown format ${JSON.stringify(format)}`);
  }
}
