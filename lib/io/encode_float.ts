/**
 * Float64 values to the bytes of a safetensors tensor in F64, F32, F16 or BF16, each value
 * rounded ONCE to the nearest representable number, ties to even (as if rounded straight from
 * the exact value). For F16/BF16 the value goes through f32 with round-to-odd, which has more
 * than two extra bits and so never causes a double-rounding error, then through the
 * round-to-nearest-even converters of lib/quant/f16.ts.
 *
 * @module
 */

import { toBf16Bits, toF16Bits } from "../quant/f16.ts";
import { type SafetensorsTensor, tensorFromArray } from "./safetensors.ts";

/** The float dtypes {@link encodeFloats} writes. */
export type FloatDtype = "F64" | "F32" | "F16" | "BF16";

const F = new Float32Array(1);
const U = new Uint32Array(F.buffer);

/**
 * `x` rounded to f32 with round-to-odd: exact values stay; otherwise of the two neighbouring
 * f32s the one whose last mantissa bit is 1. (Overflow gives ±Infinity, as round-to-nearest.)
 */
export function roundToOddF32(x: number): number {
  const f = Math.fround(x);
  if (f === x || !Number.isFinite(f)) return f;
  F[0] = f;
  if (U[0] & 1) return f;
  if (f === 0) return x > 0 ? 2 ** -149 : -(2 ** -149); // the odd neighbour of ±0
  // f is even: step one ulp towards x (the bits grow with the magnitude).
  U[0] += (x > f) === (f > 0) ? 1 : -1;
  return F[0];
}

/** Float64 values as a safetensors tensor of `dtype` and `shape` (see the module docs). */
export function encodeFloats(
  dtype: FloatDtype,
  shape: number[],
  values: Float64Array | Float32Array,
): SafetensorsTensor {
  if (dtype === "F64") return tensorFromArray("F64", shape, Float64Array.from(values));
  let f32: Float32Array;
  if (values instanceof Float32Array) f32 = values;
  else if (dtype === "F32") f32 = Float32Array.from(values); // one round-to-nearest-even
  else {
    f32 = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) f32[i] = roundToOddF32(values[i]);
  }
  if (dtype === "F32") return tensorFromArray("F32", shape, f32);
  return tensorFromArray(dtype, shape, dtype === "F16" ? toF16Bits(f32) : toBf16Bits(f32));
}
