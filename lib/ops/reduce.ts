/**
 * Reductions over one axis: sum, mean, max.
 *
 * @module
 */

import type { ReduceOp } from "../backend/backend.ts";
import { record } from "../autograd/record.ts";
import { numel, scope, Tensor } from "../tensor.ts";
import { expandTo, scaleBy } from "./_adjoint.ts";
import { needDtype, normAxis } from "./util.ts";

/** Options of the reductions. */
export interface ReduceOptions {
  /** Keep the reduced axis with size 1. Default false. */
  keepDims?: boolean;
}

function reduce(op: ReduceOp, a: Tensor, axis: number, opts: ReduceOptions): Tensor {
  needDtype(op, a, "f32");
  const ax = normAxis(op, axis, a.ndim);
  const len = a.shape[ax];
  if (len === 0 && op !== "sum") throw new RangeError(`${op}: axis ${axis} has size 0`);
  const outer = numel(a.shape.slice(0, ax)), inner = numel(a.shape.slice(ax + 1));
  const shape = opts.keepDims
    ? a.shape.map((d, i) => (i === ax ? 1 : d))
    : a.shape.filter((_, i) => i !== ax);
  const out = new Tensor(
    a.backend,
    a.backend.reduce(op, a.storage, outer, len, inner),
    shape,
    "f32",
  );
  return record(out, [a], (g) => {
    if (op === "max") throw new Error("autograd: max has no backward in loralab");
    return scope(() => {
      const keep = a.shape.map((d, i) => (i === ax ? 1 : d));
      const full = expandTo(g.reshape(keep), a.shape);
      return [op === "mean" ? scaleBy(full, 1 / len) : full];
    });
  });
}

/** Sum over `axis` (negative counts from the end). */
export function sum(a: Tensor, axis: number, opts: ReduceOptions = {}): Tensor {
  return reduce("sum", a, axis, opts);
}
/** Mean over `axis`. */
export function mean(a: Tensor, axis: number, opts: ReduceOptions = {}): Tensor {
  return reduce("mean", a, axis, opts);
}
/** Maximum over `axis`. */
export function max(a: Tensor, axis: number, opts: ReduceOptions = {}): Tensor {
  return reduce("max", a, axis, opts);
}
