/**
 * int8 absmax quantization, per tensor or per row (vector-wise, as LLM.int8()).
 *
 * q = round(w * 127 / absmax) (half away from zero), in -127..127; w ≈ q * absmax / 127.
 * absmax is kept as f32 (one per tensor or one per row). A row of zeros has absmax 0: its
 * codes are 0 and it dequantizes to zeros (no division by zero).
 *
 * @module
 */

import { checkFinite, checkShape, roundHalfAway } from "./check.ts";
import type { QuantizedWeight } from "./weight.ts";

/** An int8 absmax-quantized weight. */
export class Int8Weight implements QuantizedWeight {
  /** "int8" (one scale) or "int8-row" (one scale per row). */
  readonly format: "int8" | "int8-row";
  /** Logical shape. */
  readonly shape: readonly number[];
  /** Number of weights. */
  readonly numel: number;
  /** Codes in -127..127: Int8Array [numel]. */
  readonly codes: Int8Array;
  /**
   * absmax per scale group: Float32Array [1] for "int8", [rows] for "int8-row", where
   * cols = shape[last] and rows = numel / cols.
   */
  readonly absmax: Float32Array;

  /** Wraps existing codes and scales; see {@link quantizeInt8} to build one. */
  constructor(
    format: "int8" | "int8-row",
    codes: Int8Array,
    absmax: Float32Array,
    shape: readonly number[],
  ) {
    this.numel = checkShape("Int8Weight", shape, codes.length);
    this.format = format;
    this.shape = [...shape];
    this.codes = codes;
    this.absmax = absmax;
  }

  /** Elements sharing one scale: numel for "int8", the row length for "int8-row". */
  get groupSize(): number {
    return this.format === "int8" ? this.numel : this.shape[this.shape.length - 1];
  }

  /** Bytes held: codes + f32 scales. */
  get bytes(): number {
    return this.codes.byteLength + this.absmax.byteLength;
  }

  /** `bytes * 8 / numel` (just over 8). */
  get bitsPerParameter(): number {
    return (this.bytes * 8) / this.numel;
  }

  /** w = q * absmax / 127: Float32Array [numel]. */
  dequantize(): Float32Array {
    const out = new Float32Array(this.numel);
    const g = this.groupSize;
    for (let i = 0; i < this.numel; i++) {
      out[i] = (this.codes[i] * this.absmax[Math.floor(i / g)]) / 127;
    }
    return out;
  }
}

/**
 * int8 absmax quantization with one scale for the whole tensor.
 *
 * @param weights Float32Array [numel]
 */
export function quantizeInt8(weights: Float32Array, shape: readonly number[]): Int8Weight {
  checkShape("quantizeInt8", shape, weights.length);
  checkFinite("quantizeInt8", weights);
  const codes = new Int8Array(weights.length);
  const absmax = new Float32Array(1);
  absmax[0] = quantizeGroup(weights, codes, 0, weights.length);
  return new Int8Weight("int8", codes, absmax, shape);
}

/**
 * int8 absmax quantization with one scale per row (the last dimension is a row).
 *
 * @param weights Float32Array [rows, cols] (any leading dims are folded into rows)
 */
export function quantizeInt8Rows(weights: Float32Array, shape: readonly number[]): Int8Weight {
  checkShape("quantizeInt8Rows", shape, weights.length);
  checkFinite("quantizeInt8Rows", weights);
  const cols = shape[shape.length - 1];
  const rows = weights.length / cols;
  const codes = new Int8Array(weights.length);
  const absmax = new Float32Array(rows);
  for (let r = 0; r < rows; r++) absmax[r] = quantizeGroup(weights, codes, r * cols, cols);
  return new Int8Weight("int8-row", codes, absmax, shape);
}

// Quantizes weights[start, start + n) into codes; returns the group's absmax.
function quantizeGroup(w: Float32Array, codes: Int8Array, start: number, n: number): number {
  let absmax = 0;
  for (let i = start; i < start + n; i++) absmax = Math.max(absmax, Math.abs(w[i]));
  if (absmax === 0) return 0; // codes stay 0
  for (let i = start; i < start + n; i++) codes[i] = roundHalfAway((w[i] * 127) / absmax);
  return absmax;
}
