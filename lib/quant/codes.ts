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

const FORMAT4: ReadonlySet<string> = new Set<Format4>(["nf4", "fp4", "int4"]);
/** Whether a format name is one of the 4-bit blockwise formats ({@link Format4}). */
export function isFormat4(format: string): format is Format4 {
  return FORMAT4.has(format);
}

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

/** Buckets of the grid over [-1, 1] that {@link codeSearch} looks up. */
const GRID = 512;

/**
 * A nearest-code search for one table that gives exactly {@link nearestCode}'s answer (the
 * same float64 distances, ties to the smaller index) in one or two steps instead of 16. x in
 * [-1, 1] picks a bucket of a 512-cell grid; the bucket lists the codes whose cells (the points
 * nearest to their value, boundaries included) meet the bucket widened by 1e-9 on each side
 * (far more than the rounding of the bucket index, far less than a bucket). Most buckets lie
 * inside one cell: that code is the answer with no arithmetic. Where a cell boundary (a midpoint
 * between two values) crosses the bucket, the two or more candidates are compared with the
 * reference's distances and tie rule. x outside [-1, 1] (never produced by w / absmax) takes the
 * full scan. Quantizing a 1.1 B-parameter model spent most of its time in that scan.
 *
 * @param table Float32Array [16]
 * @returns a function of x (finite) giving the code nearestCode(table, x) gives.
 */
export function codeSearch(table: Float32Array): (x: number) => number {
  const n = table.length;
  // Codes sorted by value (equal values by index), and each one's cell [left, right].
  const order = Array.from({ length: n }, (_, c) => c).sort((a, b) => table[a] - table[b] || a - b);
  const v = order.map((c) => table[c]);
  const left = v.map((x, k) => (k === 0 ? -Infinity : (v[k - 1] + x) / 2));
  const right = v.map((x, k) => (k === n - 1 ? Infinity : (x + v[k + 1]) / 2));
  const eps = 1e-9;
  const lo = new Uint8Array(GRID), hi = new Uint8Array(GRID);
  for (let j = 0; j < GRID; j++) {
    const a = -1 + (2 * j) / GRID - eps, b = -1 + (2 * (j + 1)) / GRID + eps;
    const meets = [...v.keys()].filter((k) => left[k] <= b && right[k] >= a);
    lo[j] = meets[0];
    hi[j] = meets[meets.length - 1];
  }
  const codes = Uint8Array.from(order), vals = Float64Array.from(v);
  return (x: number): number => {
    if (!(x >= -1 && x <= 1)) return nearestCode(table, x);
    const j = Math.min(GRID - 1, Math.floor((x + 1) * (GRID / 2)));
    const k0 = lo[j], k1 = hi[j];
    if (k0 === k1) return codes[k0];
    let best = 16, bestDist = Infinity;
    for (let k = k0; k <= k1; k++) {
      const d = Math.abs(x - vals[k]), c = codes[k];
      if (d < bestDist || (d === bestDist && c < best)) {
        best = c;
        bestDist = d;
      }
    }
    return best;
  };
}
