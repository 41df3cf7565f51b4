/**
 * Float containers: f32 (the baseline) and f16/bf16 (16-bit bits in a Uint16Array).
 *
 * @module
 */

import { checkFinite, checkShape } from "./check.ts";
import { fromBf16Bits, fromF16Bits, toBf16Bits, toF16Bits } from "./f16.ts";
import type { QuantizedWeight } from "./weight.ts";

/** A weight kept as f32: 32 bits per parameter, the baseline for comparisons. */
export class F32Weight implements QuantizedWeight {
  /** Always "f32". */
  readonly format = "f32" as const;
  /** Logical shape. */
  readonly shape: readonly number[];
  /** Number of weights. */
  readonly numel: number;
  /** A copy of the weights: Float32Array [numel]. */
  readonly data: Float32Array;

  /** Copies `weights` (Float32Array [numel]) with the given shape. */
  constructor(weights: Float32Array, shape: readonly number[]) {
    this.numel = checkShape("quantizeF32", shape, weights.length);
    this.shape = [...shape];
    this.data = weights.slice();
  }

  /** Bytes held: 4 per weight. */
  get bytes(): number {
    return this.data.byteLength;
  }

  /** 32. */
  get bitsPerParameter(): number {
    return (this.bytes * 8) / this.numel;
  }

  /** A copy of the weights: Float32Array [numel]. */
  dequantize(): Float32Array {
    return this.data.slice();
  }
}

/** A weight kept as f16 or bf16 bits. */
export class F16Weight implements QuantizedWeight {
  /** "f16" or "bf16". */
  readonly format: "f16" | "bf16";
  /** Logical shape. */
  readonly shape: readonly number[];
  /** Number of weights. */
  readonly numel: number;
  /** The 16-bit patterns: Uint16Array [numel]. */
  readonly bits: Uint16Array;

  /** Wraps existing bits (Uint16Array [numel]); see {@link quantizeF16} to build one. */
  constructor(format: "f16" | "bf16", bits: Uint16Array, shape: readonly number[]) {
    this.numel = checkShape(`F16Weight(${format})`, shape, bits.length);
    this.format = format;
    this.shape = [...shape];
    this.bits = bits;
  }

  /** Bytes held: 2 per weight. */
  get bytes(): number {
    return this.bits.byteLength;
  }

  /** 16. */
  get bitsPerParameter(): number {
    return (this.bytes * 8) / this.numel;
  }

  /** The weights as f32 (exact): Float32Array [numel]. */
  dequantize(): Float32Array {
    return this.format === "f16" ? fromF16Bits(this.bits) : fromBf16Bits(this.bits);
  }
}

/**
 * Rounds weights to f16 (ties to even). Throws on NaN/Infinity and on finite weights beyond
 * the f16 range (|w| > 65504 after rounding), which would silently become Infinity.
 *
 * @param weights Float32Array [numel]
 */
export function quantizeF16(weights: Float32Array, shape: readonly number[]): F16Weight {
  return quantize16("quantizeF16", "f16", weights, shape);
}

/**
 * Rounds weights to bf16 (ties to even). Throws on NaN/Infinity and on weights that round
 * past bf16's largest finite value.
 *
 * @param weights Float32Array [numel]
 */
export function quantizeBF16(weights: Float32Array, shape: readonly number[]): F16Weight {
  return quantize16("quantizeBF16", "bf16", weights, shape);
}

function quantize16(
  fn: string,
  format: "f16" | "bf16",
  weights: Float32Array,
  shape: readonly number[],
): F16Weight {
  checkShape(fn, shape, weights.length);
  checkFinite(fn, weights);
  const bits = format === "f16" ? toF16Bits(weights) : toBf16Bits(weights);
  const expMask = format === "f16" ? 0x7c00 : 0x7f80; // all-ones exponent = Inf
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & expMask) === expMask) {
      throw new Error(`${fn}: weight ${i} (${weights[i]}) overflows ${format}`);
    }
  }
  return new F16Weight(format, bits, shape);
}
