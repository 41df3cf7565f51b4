/**
 * The adjoints that backward closures use: {@link sumTo} (sum a gradient down to an input's
 * shape), {@link expandTo} (copy a gradient up to an input's shape) and {@link scaleBy}. They
 * call the backend directly and record nothing (a backward runs with no tape active, so recording
 * would be a no-op anyway). Forward ops import this file, never each other, so `elementwise`,
 * `reduce` and `broadcast` form no import cycle (tinygrad keeps its gradient rules apart from its
 * forward ops the same way).
 *
 * @module
 */

import { fmtShape, numel, Tensor } from "../tensor.ts";
import { contiguousStrides } from "./util.ts";

/** Sum over axis `ax` (the same backend reduction as `sum`), unrecorded. */
function sumAxis(a: Tensor, ax: number, keepDims: boolean): Tensor {
  const outer = numel(a.shape.slice(0, ax)),
    len = a.shape[ax],
    inner = numel(a.shape.slice(ax + 1));
  const shape = keepDims
    ? a.shape.map((d, i) => (i === ax ? 1 : d))
    : a.shape.filter((_, i) => i !== ax);
  return new Tensor(a.backend, a.backend.reduce("sum", a.storage, outer, len, inner), shape, "f32");
}

/**
 * Expands `a` to `shape` by numpy rules (a contiguous copy), unrecorded: the forward of
 * `broadcastTo` and the backward of the reductions.
 */
export function expandTo(a: Tensor, shape: readonly number[]): Tensor {
  const k = shape.length - a.ndim;
  const own = contiguousStrides(a.shape);
  if (k < 0 || a.shape.some((d, i) => d !== 1 && d !== shape[i + k])) {
    throw new RangeError(`broadcastTo: ${fmtShape(a.shape)} cannot expand to ${fmtShape(shape)}`);
  }
  const strides = shape.map((d, i) => i < k || (a.shape[i - k] === 1 && d !== 1) ? 0 : own[i - k]);
  const s = a.backend.strided(a.storage, a.dtype, { shape: [...shape], strides, offset: 0 });
  return new Tensor(a.backend, s, shape, a.dtype);
}

/**
 * Sums `g` over the axes along which `shape` was broadcast to reach `g.shape` (leading extra
 * axes, and axes where `shape` has 1), unrecorded. Returns `g` itself when the shapes already
 * agree. The backward of broadcasting.
 */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (fmtShape(g.shape) === fmtShape(shape)) return g;
  const extra = g.ndim - shape.length;
  if (extra < 0) {
    throw new RangeError(`sumTo: ${fmtShape(g.shape)} is smaller than ${fmtShape(shape)}`);
  }
  let t = g;
  const temps: Tensor[] = [];
  if (extra > 0) {
    const flat = g.reshape([-1, ...g.shape.slice(extra)]);
    t = sumAxis(flat, 0, false);
    temps.push(flat);
  }
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1 && t.shape[i] !== 1) {
      if (t !== g) temps.push(t);
      t = sumAxis(t, i, true);
    }
  }
  for (const x of temps) if (x !== t) x.dispose();
  if (fmtShape(t.shape) !== fmtShape(shape)) {
    throw new RangeError(`sumTo: ${fmtShape(g.shape)} does not reduce to ${fmtShape(shape)}`);
  }
  return t;
}

/** `a · s` (the backend's `scale`), unrecorded. */
export function scaleBy(a: Tensor, s: number): Tensor {
  return new Tensor(a.backend, a.backend.unary("scale", a.storage, a.size, s), a.shape, "f32");
}
