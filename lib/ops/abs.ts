/**
 * |x|, composed as relu(x) + relu(-x) (not differentiable at 0; used for gradient scores).
 *
 * @module
 */

import type { Tensor } from "../tensor.ts";
import { add, neg, relu } from "./elementwise.ts";

/** Elementwise absolute value. */
export function abs(x: Tensor): Tensor {
  const n = neg(x), a = relu(x), b = relu(n);
  const out = add(a, b);
  for (const t of [n, a, b]) t.dispose();
  return out;
}
