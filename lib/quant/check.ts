/**
 * Input checks shared by the quantizers: shapes, finite weights, rounding.
 *
 * @module
 */

/**
 * Checks that `shape` is a list of positive integers whose product is `length`.
 *
 * @param fn the caller's name, used in the error message.
 * @returns the number of elements.
 */
export function checkShape(fn: string, shape: readonly number[], length: number): number {
  if (shape.length === 0) throw new Error(`${fn}: shape must have at least one dimension`);
  let numel = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 1) {
      throw new Error(`${fn}: shape [${shape}] must hold positive integers`);
    }
    numel *= d;
  }
  if (numel !== length) {
    throw new Error(`${fn}: shape [${shape}] has ${numel} elements but weights has ${length}`);
  }
  return numel;
}

/** Throws `"<fn>: weight <i> is NaN"` (or Infinity/-Infinity) for the first non-finite weight. */
export function checkFinite(fn: string, weights: Float32Array): void {
  for (let i = 0; i < weights.length; i++) {
    if (!Number.isFinite(weights[i])) throw new Error(`${fn}: weight ${i} is ${weights[i]}`);
  }
}

/** Rounds half away from zero (symmetric: round(-x) = -round(x)), e.g. 2.5 -> 3, -2.5 -> -3. */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}
