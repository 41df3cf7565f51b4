/**
 * Broadcasting helpers: expand a tensor to a larger shape (`broadcastTo`) and its adjoint, summing
 * a gradient back down to an input's shape (`sumTo`).
 *
 * @module
 */

import { record } from "../autograd/record.ts";
import type { Tensor } from "../tensor.ts";
import { expandTo, sumTo } from "./_adjoint.ts";

export { sumTo };

/**
 * Expands `a` to `shape` by numpy rules (a contiguous copy). Its backward is {@link sumTo}.
 */
export function broadcastTo(a: Tensor, shape: readonly number[]): Tensor {
  const out = expandTo(a, shape);
  return record(out, [a], (g) => [sumTo(g, a.shape)]);
}
