/**
 * Inverted dropout with a seeded host-side mask: out = x · mask / (1 - p).
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import { Tensor } from "../tensor.ts";
import { mul } from "./elementwise.ts";

/**
 * Zeroes each element with probability `p` and scales the survivors by 1/(1-p), drawing the
 * mask from `rng` (so runs are reproducible). p = 0 returns `x` itself. Differentiable (the
 * mask is a constant of the product).
 */
export function dropout(x: Tensor, p: number, rng: Rng): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p = ${p} must be in [0, 1)`);
  if (p === 0) return x;
  const keep = 1 / (1 - p);
  const m = new Float32Array(x.size);
  for (let i = 0; i < m.length; i++) m[i] = rng.uniform() < p ? 0 : keep;
  const mask = Tensor.fromArray(m, x.shape, { device: x.backend });
  return mul(x, mask);
}
