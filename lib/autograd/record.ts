/**
 * The leaf of autograd: the slot for the active tape, {@link record} (which every differentiable
 * op calls after its forward) and {@link activeTape}. It imports nothing, so `tensor.ts` and every
 * op can use it without an import cycle; the {@link Tape} itself lives in `tape.ts`.
 *
 * @module
 */

/** Sends the gradient of a node's output to its inputs (null where an input needs none). */
export type GradFn<T> = (g: T, needs: boolean[]) => (T | null)[];

/** What ops and tensors need of the active tape (implemented by `Tape`). */
export interface ActiveTape<T> {
  /** Whether `t` is watched or computed from a watched tensor. */
  needsGrad(t: T): boolean;
  /** Appends a node. */
  push(out: T, inputs: T[], backward: GradFn<T>): void;
  /** Whether a recorded node refers to `t` (its backward may still read it). */
  holds(t: T): boolean;
  /** The watched leaf tensors (the ones that get gradients). */
  watched(): readonly T[];
}

// deno-lint-ignore no-explicit-any
let active: ActiveTape<any> | null = null;

/** The tape that ops record onto right now, if any. */
// deno-lint-ignore no-explicit-any
export function activeTape(): ActiveTape<any> | null {
  return active;
}

/**
 * Makes `tape` the active one (null: none) and returns the one it replaces; `Tape.run` uses it
 * and restores the previous value afterwards.
 */
// deno-lint-ignore no-explicit-any
export function setActiveTape(tape: ActiveTape<any> | null): ActiveTape<any> | null {
  const prev = active;
  active = tape;
  return prev;
}

/**
 * Called by every differentiable op after computing `out` from `inputs`. Records the node when
 * a tape is active and at least one input needs a gradient; otherwise does nothing.
 */
export function record<T>(out: T, inputs: T[], backward: GradFn<T>): T {
  const tape = active;
  if (tape && inputs.some((t) => tape.needsGrad(t))) tape.push(out, inputs, backward);
  return out;
}
