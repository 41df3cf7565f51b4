/**
 * The 16-entry code tables of the 4-bit formats and the nearest-code search.
 *
 * A 4-bit code c stands for the value `table[c] * absmax` of its block. Quantization picks
 * the code whose table value is nearest to `w / absmax` (computed in float64); on a tie the
 * code with the smaller index wins (a strict `<` scan from code 0 to 15).
 *
 * @module
 */

/** Which 4-bit code table. */
export type Format4 = "nf4" | "fp4" | "int4";

/**
 * NF4 values, index 0..15, as bitsandbytes `get_4bit_type("nf4")` (QLoRA's NormalFloat4:
 * quantiles of N(0, 1) normalized to [-1, 1], with an exact 0 at index 7).
 */
export const NF4_VALUES: readonly number[] = Object.freeze([
  -1.0,
  -0.6961928009986877,
  -0.5250730514526367,
  -0.39491748809814453,
  -0.28444138169288635,
  -0.18477343022823334,
  -0.09105003625154495,
  0.0,
  0.07958029955625534,
  0.16093020141124725,
  0.24611230194568634,
  0.33791524171829224,
  0.44070982933044434,
  0.5626170039176941,
  0.7229568362236023,
  1.0,
]);

/**
 * FP4 values, index 0..15, as bitsandbytes (1 sign, 2 exponent, 1 mantissa bit): codes 0..7
 * are 0, 0.0625, 8, 12, 4, 6, 2, 3 divided by 12; codes 8..15 are their negatives (8 is -0).
 */
export const FP4_VALUES: readonly number[] = Object.freeze(
  [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3].map((v) => v / 12),
);

/**
 * Symmetric int4 absmax values, index 0..15: code c means (c - 8) / 7 (offset binary).
 * Codes 1..15 are -7/7..7/7; code 0 (-8/7) lies outside [-1, 1], so it is never the nearest
 * and never produced.
 */
export const INT4_VALUES: readonly number[] = Object.freeze(
  Array.from({ length: 16 }, (_, c) => (c - 8) / 7),
);

// The tables as f32, the precision the dequantizer (and a GPU kernel) multiplies in.
const TABLES: Record<Format4, Float32Array> = {
  nf4: Float32Array.from(NF4_VALUES),
  fp4: Float32Array.from(FP4_VALUES),
  int4: Float32Array.from(INT4_VALUES),
};

/** A fresh copy of the f32 code table of `format`: Float32Array [16]. */
export function codeTable(format: Format4): Float32Array {
  return TABLES[format].slice();
}

/** The shared f32 table (internal: callers must not write to it). */
export function sharedTable(format: Format4): Float32Array {
  return TABLES[format];
}

/**
 * The index of the table value nearest to `x` (ties: smaller index).
 *
 * @param table Float32Array [16]
 * @param x a normalized weight, w / absmax, in [-1, 1].
 */
export function nearestCode(table: Float32Array, x: number): number {
  let best = 0;
  let bestDist = Math.abs(x - table[0]);
  for (let c = 1; c < table.length; c++) {
    const d = Math.abs(x - table[c]);
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best;
}
