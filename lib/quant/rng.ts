/**
 * Seeded random draws for tests and error studies, on top of the project's `Rng`
 * (`lib/rng.ts`, xoshiro128**). Not exported from `mod.ts`.
 *
 * @module
 */

import { Rng } from "../rng.ts";

/**
 * A function giving uniforms in [0, 1) from a seeded `Rng`.
 *
 * @param seed any integer; the same seed gives the same sequence.
 */
export function uniforms(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.uniform();
}

/**
 * n samples of N(0, std^2) as f32 (Box-Muller, via `Rng.normal`).
 *
 * @returns Float32Array [n]
 */
export function randn(n: number, seed: number, std = 1): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * rng.normal();
  return out;
}
