/**
 * Checks shared by the ops: same backend, expected dtype, axis normalisation.
 *
 * @module
 */

import { fmtShape, type Tensor } from "../tensor.ts";
import type { DType } from "../backend/backend.ts";

/** Throws unless every tensor lives on the first one's backend. */
export function sameBackend(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.backend !== ts[0].backend) {
      throw new Error(
        `${op}: tensors on different backends (${ts[0].backend.kind} and ${t.backend.kind})`,
      );
    }
  }
}

/** Throws unless `t` has dtype `want`. */
export function needDtype(op: string, t: Tensor, want: DType, name = "input"): void {
  if (t.dtype !== want) {
    throw new TypeError(`${op}: ${name} ${fmtShape(t.shape)} is ${t.dtype}, expected ${want}`);
  }
}

/** Maps a possibly negative axis into [0, ndim). */
export function normAxis(op: string, axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim) {
    throw new RangeError(`${op}: axis ${axis} is out of range for ${ndim} dims`);
  }
  return a;
}

/** Row-major strides of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}
