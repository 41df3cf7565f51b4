/**
 * Bottleneck adapters (Houlsby et al. 2019): h ← h + up(gelu(down(h))), down: C → m, up: m → C.
 * `up` starts at zero, so an adapted model starts exactly as the base model.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { Linear } from "../nn/linear.ts";
import { add, gelu } from "../ops/mod.ts";
import { Rng } from "../rng.ts";
import { Tensor } from "../tensor.ts";

/** A residual bottleneck MLP inserted after a sub-layer. */
export class BottleneckAdapter {
  /** Down-projection [C, m] (GPT-2 layout), N(0, 0.02²) init. */
  down: Linear;
  /** Up-projection [m, C], zero init. */
  up: Linear;

  /** A fresh adapter of width `dim` and bottleneck `size`. */
  constructor(dim: number, size: number, device: Backend, seed: number) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`BottleneckAdapter: size ${size} must be a positive integer`);
    }
    this.down = Linear.init(dim, size, { device, rng: new Rng(seed) });
    this.up = new Linear(
      Tensor.zeros([size, dim], { device }).keep(),
      Tensor.zeros([dim], { device }).keep(),
    );
  }

  /** h: [..., C] → h + up(gelu(down(h))). */
  forward(h: Tensor): Tensor {
    return add(h, this.up.forward(gelu(this.down.forward(h))));
  }

  /** `down.weight`, `down.bias`, `up.weight`, `up.bias`. */
  parameters(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    for (const [n, t] of this.down.parameters()) m.set(`down.${n}`, t);
    for (const [n, t] of this.up.parameters()) m.set(`up.${n}`, t);
    return m;
  }
}
