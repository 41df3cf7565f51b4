/**
 * Broadcasting helpers: expand a tensor to a larger shape (`broadcastTo`) and its adjoint, summing
 * a gradient back down to an input's shape (`sumTo`).
 *
 * @module
 */

import { record } from "../autograd/tape.ts";
import { fmtShape, Tensor } from "../tensor.ts";
import { sum } from "./reduce.ts";
import { contiguousStrides } from "./util.ts";

/**
 * Expands `a` to `shape` by numpy rules (a contiguous copy). Its backward is {@link sumTo}.
 */
export function broadcastTo(a: Tensor, shape: readonly number[]): Tensor {
  const k = shape.length - a.ndim;
  const own = contiguousStrides(a.shape);
  if (k < 0 || a.shape.some((d, i) => d !== 1 && d !== shape[i + k])) {
    throw new RangeError(`broadcastTo: ${fmtShape(a.shape)} cannot expand to ${fmtShape(shape)}`);
  }
  const strides = shape.map((
    d,
    i,
  ) => (i < k || (a.shape[i - k] === 1 && d !== 1) ? 0 : own[i - k]));
  const s = a.backend.strided(a.storage, a.dtype, { shape: [...shape], strides, offset: 0 });
  const out = new Tensor(a.backend, s, shape, a.dtype);
  return record(out, [a], (g) => [sumTo(g, a.shape)]);
}

/**
 * Sums `g` over the axes along which `shape` was broadcast to reach `g.shape` (leading extra
 * axes, and axes where `shape` has 1). Returns `g` itself when the shapes already agree.
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
    t = sum(flat, 0);
    temps.push(flat);
  }
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1 && t.shape[i] !== 1) {
      if (t !== g) temps.push(t);
      t = sum(t, i, { keepDims: true });
    }
  }
  for (const x of temps) if (x !== t) x.dispose();
  if (fmtShape(t.shape) !== fmtShape(shape)) {
    throw new RangeError(`sumTo: ${fmtShape(g.shape)} does not reduce to ${fmtShape(shape)}`);
  }
  return t;
}
