/**
 * Gradient checkpointing: `checkpoint(fn, x)` runs `y = fn(x)` (a transformer block) without
 * recording its inside, keeping only `x`; the backward pass runs `fn(x)` again under a fresh tape
 * and back-propagates through it, then frees the recomputed activations. Memory for activations
 * drops from every op of every block to one block's worth plus each block's input, at the price
 * of a second forward pass.
 *
 * The recomputation must see what the forward saw: the random generators in `rngs` (dropout)
 * are rewound to their state at the forward and put back afterwards, so gradients are those of
 * the same masks; the kernels are deterministic, so losses and gradients equal the
 * un-checkpointed ones bit for bit.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import { scope, type Tensor } from "../tensor.ts";
import { activeTape, record, setActiveTape } from "./record.ts";
import { Tape } from "./tape.ts";

/**
 * `fn(x)` as one node on the active tape (see the module docs). Without an active tape it is
 * `fn(x)` in a scope (evaluation: the block's intermediates are freed at its end).
 */
export function checkpoint(
  fn: (x: Tensor) => Tensor,
  x: Tensor,
  rngs: readonly Rng[] = [],
): Tensor {
  const outer = activeTape();
  if (!outer) return scope(() => fn(x));
  const leaves = outer.watched() as Tensor[];
  const before = rngs.map((r) => r.getState());
  setActiveTape(null);
  let y: Tensor;
  try {
    y = scope(() => fn(x)); // the block's activations are freed here, only y stays
  } finally {
    setActiveTape(outer);
  }
  return record(y, [x, ...leaves], (g, needs) =>
    scope(() => {
      const now = rngs.map((r) => r.getState());
      rngs.forEach((r, i) => r.setState(before[i]));
      try {
        const inner = new Tape();
        const wanted = [x, ...leaves].filter((_, i) => needs[i]);
        if (wanted.length > 0) inner.watch(...wanted);
        const y2 = inner.run(() => fn(x));
        const grads = inner.backward(y2, g);
        return [x, ...leaves].map((t, i) => (needs[i] ? grads.get(t) ?? null : null));
      } finally {
        rngs.forEach((r, i) => r.setState(now[i]));
      }
    }));
}
