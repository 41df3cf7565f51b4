/**
 * Normalisation layers beside LayerNorm (lib/nn/linear.ts): RMSNorm, x / √(mean(x²) + ε) · w
 * (Llama and its relatives).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { add, div, mean, mul, sqrt } from "../ops/mod.ts";
import { Tensor } from "../tensor.ts";

/** RMSNorm over the last axis with a learned scale. */
export class RMSNorm {
  #eps: Tensor | null = null;
  /** Wraps a weight [C]. */
  constructor(public weight: Tensor, readonly eps = 1e-6) {}

  /** Fresh RMSNorm: weight 1. */
  static init(dim: number, device: Backend, eps = 1e-6): RMSNorm {
    return new RMSNorm(
      Tensor.fromArray(new Float32Array(dim).fill(1), [dim], { device }).keep(),
      eps,
    );
  }

  /** x: [..., C] → x / √(mean(x²) + ε) · w. */
  forward(x: Tensor): Tensor {
    this.#eps ??= Tensor.fromArray([this.eps], [1], { device: this.weight.backend }).keep();
    const ms = mean(mul(x, x), -1, { keepDims: true }); // [..., 1]
    return mul(div(x, sqrt(add(ms, this.#eps))), this.weight);
  }

  /** `weight`. */
  parameters(): Map<string, Tensor> {
    return new Map([["weight", this.weight]]);
  }

  /** Frees the weight and the cached ε. */
  dispose(): void {
    this.weight.dispose();
    this.#eps?.dispose();
  }
}
