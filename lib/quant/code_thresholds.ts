/**
 * The nearest-code search of a 4-bit table as f32 thresholds, the form a GPU kernel evaluates
 * (`lib/backend/webgpu/kernels/quantize4.ts`): for the f32 x = w / absmax, the code is
 * `codes[k]` where k counts the thresholds t with x >= t.
 *
 * The table's distinct values are sorted ascending (a value held by two codes, FP4's 0 and -0,
 * keeps the smaller index: the one `nearestCode` returns); between neighbours v_k < v_{k+1}
 * lies the midpoint μ_k = (v_k + v_{k+1}) / 2 (exact in float64). `nearestCode` picks v_{k+1}
 * for x > μ_k, v_k for x < μ_k, and on x = μ_k the code with the smaller index. For an f32 x
 * that is the comparison x >= t_k with t_k the smallest f32 above μ_k (or at μ_k, when the upper
 * code has the smaller index): exactly `nearestCode`'s answer for every f32 x, with no f32
 * rounding of distances ({@link codeByThresholds} is the CPU twin, checked against `nearestCode`
 * in tests/quant/code_thresholds.test.ts).
 *
 * @module
 */

/** A table's search as thresholds: `codes[k]` for x with k thresholds at or below it. */
export interface CodeThresholds {
  /** Ascending f32 thresholds t_0 … t_{n-2} between the n distinct values: Float32Array [n - 1]. */
  readonly thresholds: Float32Array;
  /** The code of the k-th smallest distinct value: Uint8Array [n]. */
  readonly codes: Uint8Array;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** The next f32 above the f32 `x` (finite). */
function nextUpF32(x: number): number {
  if (x === 0) return 2 ** -149;
  F32[0] = x;
  U32[0] += x > 0 ? 1 : -1;
  return F32[0];
}

/** The threshold form of `table`'s nearest-code search (see the module docs). */
export function codeThresholds(table: Float32Array): CodeThresholds {
  const order = Array.from(table.keys()).sort((a, b) => table[a] - table[b] || a - b);
  const codes = order.filter((c, k) => k === 0 || table[c] !== table[order[k - 1]]);
  const thresholds = new Float32Array(codes.length - 1);
  for (let k = 0; k + 1 < codes.length; k++) {
    const lo = codes[k], hi = codes[k + 1];
    const mid = (table[lo] + table[hi]) / 2; // exact in float64
    const upperOnTie = hi < lo; // on x = mid the smaller index wins
    let t = Math.fround(mid);
    if (upperOnTie ? t < mid : t <= mid) t = nextUpF32(t);
    thresholds[k] = t;
  }
  return { thresholds, codes: Uint8Array.from(codes) };
}

/** CPU twin of the kernel's `code_of`: the code of the f32 `x` by counting thresholds. */
export function codeByThresholds(t: CodeThresholds, x: number): number {
  let k = 0;
  for (let j = 0; j < t.thresholds.length; j++) if (x >= t.thresholds[j]) k++;
  return t.codes[k];
}
