/**
 * Activations composed of differentiable ops. SiLU: x · σ(x), with
 * σ(x) = exp(-relu(-x)) / (1 + exp(-|x|)): no exp ever overflows, so neither value nor gradient
 * becomes NaN for large |x|.
 *
 * @module
 */

import { add, div, exp, mul, neg, relu } from "../ops/mod.ts";
import type { Tensor } from "../tensor.ts";

/** x · σ(x) without overflow (see the module docs); `one` is the constant 1 [1]. */
export function silu(x: Tensor, one: Tensor): Tensor {
  const pos = relu(x), negPart = relu(neg(x)); // max(x, 0), max(-x, 0)
  const num = exp(neg(negPart)); // e^min(x, 0)
  const den = add(exp(neg(add(pos, negPart))), one); // 1 + e^-|x|
  return mul(x, div(num, den));
}
