/**
 * Reverse-mode automatic differentiation with a tape, micrograd-style: every op in `lib/ops/`
 * writes its backward right next to its forward and calls {@link record}; when a {@link Tape} is
 * active and an input needs a gradient, the op's output and its backward closure go onto the tape.
 *
 * Only tensors that a tape {@link Tape.watch | watches} (the trainable parameters) and values
 * computed from them get gradients: a frozen weight never has a gradient buffer.
 *
 * @example
 * ```ts
 * const tape = new Tape();
 * tape.watch(w);                       // w requires grad; x does not
 * const loss = tape.run(() => mean(matmul(x, w), 0));
 * const grads = tape.backward(loss);   // Map: w -> dloss/dw
 * ```
 *
 * @module
 */

import { add } from "../ops/elementwise.ts";
import { Tensor } from "../tensor.ts";
import { type ActiveTape, activeTape, type GradFn, record, setActiveTape } from "./record.ts";

export { type ActiveTape, activeTape, type GradFn, record };

/** Sends the gradient of a node's output to its inputs (null where an input needs none). */
export type BackwardFn = GradFn<Tensor>;

interface Node {
  out: Tensor;
  inputs: Tensor[];
  backward: BackwardFn;
}

/** A record of differentiable computation, replayed backwards by {@link Tape.backward}. */
export class Tape implements ActiveTape<Tensor> {
  private nodes: Node[] = [];
  private tracked = new Set<Tensor>();
  private leaves = new Set<Tensor>();
  private held = new Set<Tensor>();

  /**
   * Marks leaf tensors (parameters) as requiring gradients. Returns the first one. A tensor
   * stored in row chunks (`Tensor.chunks`) is watched as its chunks: each is a leaf of its own,
   * and {@link backward} returns one gradient per chunk, keyed by the chunk tensor.
   */
  watch(...ts: Tensor[]): Tensor {
    for (const t of ts) {
      if (t.dtype !== "f32") throw new TypeError(`Tape.watch: only f32 tensors can require grad`);
      for (const leaf of t.chunks ?? [t]) {
        this.tracked.add(leaf);
        this.leaves.add(leaf);
      }
    }
    return ts[0];
  }

  /** The watched leaf tensors (the chunks of a watched tensor stored in row chunks). */
  watched(): readonly Tensor[] {
    return [...this.leaves];
  }

  /** Whether `t` is watched or computed from a watched tensor on this tape. */
  needsGrad(t: Tensor): boolean {
    return this.tracked.has(t);
  }

  /** Appends a node (used by {@link record}). */
  push(out: Tensor, inputs: Tensor[], backward: BackwardFn): void {
    this.nodes.push({ out, inputs, backward });
    this.tracked.add(out);
    this.held.add(out);
    for (const t of inputs) this.held.add(t);
  }

  /**
   * Whether a recorded node refers to `t` (its backward may need it): {@link scope} does not
   * dispose such tensors while this tape is active but hands them to the enclosing scope.
   */
  holds(t: Tensor): boolean {
    return this.held.has(t);
  }

  /** Number of recorded nodes. */
  get length(): number {
    return this.nodes.length;
  }

  /** Runs `fn` with this tape active, so the ops inside it record. Tapes do not nest. */
  run<T>(fn: () => T): T {
    if (activeTape()) throw new Error("Tape.run: another tape is already active");
    setActiveTape(this);
    try {
      const r = fn();
      if (r instanceof Promise) {
        throw new Error("Tape.run: fn must be synchronous (ops are; only readbacks await)");
      }
      return r;
    } finally {
      setActiveTape(null);
    }
  }

  /**
   * Back-propagates from `out` (a scalar, or any tensor with an explicit `grad` seed of its
   * shape) and returns the gradient of every watched tensor that `out` depends on. Intermediate
   * gradients are disposed as soon as they have been used. The tape is cleared afterwards.
   */
  backward(out: Tensor, grad?: Tensor): Map<Tensor, Tensor> {
    if (activeTape()) throw new Error("Tape.backward: call it outside tape.run()");
    if (!this.tracked.has(out)) {
      throw new Error("Tape.backward: the output does not depend on any watched tensor");
    }
    let seed = grad;
    if (!seed) {
      if (out.size !== 1) {
        throw new RangeError(
          `Tape.backward: output has ${out.size} elements; pass a seed gradient`,
        );
      }
      seed = onesLike(out);
    } else if (seed.shape.join() !== out.shape.join()) {
      throw new RangeError(`Tape.backward: seed shape [${seed.shape}] != output [${out.shape}]`);
    }
    const grads = new Map<Tensor, Tensor>([[out, seed]]);
    const owned = new Set<Tensor>(grad ? [] : [seed]); // gradients this call allocated
    // Disposes a gradient once no entry of `grads` refers to it (backward fns may pass g on).
    const release = (t: Tensor) => {
      if (!owned.has(t)) return;
      for (const v of grads.values()) if (v === t) return;
      owned.delete(t);
      t.dispose();
    };
    // Whether `prev`, inp's gradient so far, may take `gi` in place: this call allocated it, no
    // view shares its storage, no recorded value is it, no other gradient entry is the same
    // tensor, and the backend can.
    const inPlace = (prev: Tensor, gi: Tensor, inp: Tensor, g: Tensor, gin: (Tensor | null)[]) => {
      if (!owned.has(prev) || !prev.soleOwner || !prev.backend.accumulate) return false;
      if (prev === g || gin.includes(prev)) return false; // this node still reads it
      if (this.held.has(prev)) return false; // a recorded value some backward may still read
      if (prev.dtype !== "f32" || gi.dtype !== "f32" || prev.backend !== gi.backend) return false;
      for (const [t, v] of grads) if (v === prev && t !== inp) return false;
      return true;
    };
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i];
      const g = grads.get(node.out);
      if (!g) continue;
      const needs = node.inputs.map((t) => this.tracked.has(t));
      const gin = node.backward(g, needs);
      if (!this.leaves.has(node.out)) grads.delete(node.out);
      // Released only after every input is done: a backward may hand one tensor to several
      // inputs (add passes g to both), and a later input may still need it.
      const done: Tensor[] = [];
      node.inputs.forEach((inp, k) => {
        const gi = gin[k];
        if (!needs[k] || !gi) return;
        if (gi.shape.join() !== inp.shape.join()) {
          throw new Error(
            `autograd: gradient [${gi.shape}] does not match input [${inp.shape}] (node ${i})`,
          );
        }
        if (gi !== g) owned.add(gi);
        const prev = grads.get(inp);
        if (prev && inPlace(prev, gi, inp, g, gin)) {
          // prev is this call's own buffer and nothing else sees it: prev += gi, same sums.
          prev.backend.accumulate!(prev.storage, gi.storage, prev.size);
          done.push(gi);
        } else if (prev) {
          const sum = add(prev, gi);
          owned.add(sum);
          grads.set(inp, sum);
          done.push(prev, gi);
        } else {
          grads.set(inp, gi);
        }
      });
      for (const t of done) release(t);
      release(g);
    }
    const result = new Map<Tensor, Tensor>();
    for (const [t, g] of grads) if (this.leaves.has(t)) result.set(t, g);
    this.nodes = [];
    this.held.clear();
    this.tracked = new Set(this.leaves);
    return result;
  }
}

/** A tensor of ones with `t`'s shape and backend: the seed gradient of a scalar output. */
function onesLike(t: Tensor): Tensor {
  return Tensor.fromArray(new Float32Array(t.size).fill(1), t.shape, { device: t.backend });
}
