/**
 * Error study: how far a format's reconstruction is from the original weights.
 *
 * @module
 */

import { quantize, type QuantizeOptions } from "./quantize.ts";
import type { QuantFormat } from "./weight.ts";

/** Reconstruction error of a quantized tensor. */
export interface ErrorStats {
  /** sqrt(mean((w - ŵ)^2)). */
  rmse: number;
  /** max |w - ŵ|. */
  maxAbsError: number;
  /** Signal-to-quantization-noise ratio, 10 log10(Σw² / Σ(w - ŵ)²) in dB; Infinity if exact. */
  sqnrDb: number;
}

/** {@link ErrorStats} plus what the format cost. */
export interface QuantizationReport extends ErrorStats {
  /** The format studied. */
  format: QuantFormat;
  /** Bytes held by the quantized weight. */
  bytes: number;
  /** Bits per weight, from the quantized object. */
  bitsPerParameter: number;
}

/**
 * Error of `approx` against `original` (both Float32Array [n]), summed in float64.
 */
export function errorStats(original: Float32Array, approx: Float32Array): ErrorStats {
  if (original.length !== approx.length || original.length === 0) {
    throw new Error(
      `errorStats: lengths ${original.length} and ${approx.length} must be equal and > 0`,
    );
  }
  let signal = 0;
  let noise = 0;
  let maxAbsError = 0;
  for (let i = 0; i < original.length; i++) {
    const e = original[i] - approx[i];
    signal += original[i] * original[i];
    noise += e * e;
    maxAbsError = Math.max(maxAbsError, Math.abs(e));
  }
  return {
    rmse: Math.sqrt(noise / original.length),
    maxAbsError,
    sqnrDb: noise === 0 ? Infinity : 10 * Math.log10(signal / noise),
  };
}

/**
 * Quantizes `weights` (Float32Array [numel] of the given shape) with `format`, dequantizes,
 * and reports the error and the cost.
 */
export function quantizationError(
  weights: Float32Array,
  shape: readonly number[],
  format: QuantFormat,
  opts: QuantizeOptions = {},
): QuantizationReport {
  const q = quantize(weights, shape, format, opts);
  return {
    format,
    bytes: q.bytes,
    bitsPerParameter: q.bitsPerParameter,
    ...errorStats(weights, q.dequantize()),
  };
}
