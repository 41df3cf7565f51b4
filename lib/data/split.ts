/**
 * Train/validation splits that hold out whole units (whole addresses, whole chapters, whole
 * documents), never random lines, so validation text is never seen in training, not even in part.
 *
 * @module
 */

import { Rng } from "../rng.ts";

/** Options for {@link splitByUnit}. */
export interface SplitOptions {
  /** Fraction of the units that go to validation, in `[0, 1)`. */
  valFraction: number;
  /** Seed of the permutation; equal seeds give equal splits. */
  seed: number;
}

/** The result of {@link splitByUnit}. */
export interface Split<T> {
  /** Training units, in their original order. */
  train: T[];
  /** Validation units, in their original order. */
  val: T[];
  /** Indices (into the input) of the training units, ascending. */
  trainIndices: number[];
  /** Indices (into the input) of the validation units, ascending. */
  valIndices: number[];
}

/**
 * Splits whole units into train and validation, deterministically for a seed.
 *
 * Which units go to validation: the unit indices are shuffled by a Fisher–Yates permutation drawn
 * from `new Rng(seed)` (lib/rng.ts); the first `nVal` indices of the permutation are the
 * validation units, where `nVal = round(valFraction · n)`, at least 1 when `valFraction > 0` and at
 * most `n − 1` (training keeps at least one unit). Both parts keep the input order. The same
 * units, seed and fraction always give the same split; `valIndices` says which ones they are.
 */
export function splitByUnit<T>(units: readonly T[], options: SplitOptions): Split<T> {
  const { valFraction, seed } = options;
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new RangeError(`splitByUnit: valFraction must be in [0, 1), got ${valFraction}`);
  }
  if (!Number.isFinite(seed)) throw new RangeError(`splitByUnit: bad seed ${seed}`);
  const n = units.length;
  let nVal = Math.round(valFraction * n);
  if (valFraction > 0) {
    if (n < 2) {
      throw new RangeError(
        `splitByUnit: need at least 2 units to hold one out for validation, got ${n}`,
      );
    }
    nVal = Math.min(n - 1, Math.max(1, nVal));
  }
  const perm = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const isVal = new Uint8Array(n);
  for (let k = 0; k < nVal; k++) isVal[perm[k]] = 1;
  const trainIndices: number[] = [];
  const valIndices: number[] = [];
  for (let i = 0; i < n; i++) (isVal[i] ? valIndices : trainIndices).push(i);
  return {
    train: trainIndices.map((i) => units[i]),
    val: valIndices.map((i) => units[i]),
    trainIndices,
    valIndices,
  };
}
