/**
 * Data movement: permute (transpose), narrow (slice one axis), and dtype casts.
 *
 * @module
 */

import type { DType } from "../backend/backend.ts";
import { record } from "../autograd/record.ts";
import { fmtShape, numel, Tensor } from "../tensor.ts";
import { contiguousStrides, needDtype, normAxis, sameBackend } from "./util.ts";

/** Reorders axes: `out.shape[i] = a.shape[dims[i]]` (a contiguous copy). */
export function permute(a: Tensor, dims: readonly number[]): Tensor {
  const nd = a.ndim;
  const d = dims.map((x) => normAxis("permute", x, nd));
  if (d.length !== nd || new Set(d).size !== nd) {
    throw new RangeError(`permute: ${fmtShape(dims)} is not a permutation of ${nd} axes`);
  }
  const st = contiguousStrides(a.shape);
  const shape = d.map((i) => a.shape[i]);
  const s = a.backend.strided(a.storage, a.dtype, {
    shape,
    strides: d.map((i) => st[i]),
    offset: 0,
  });
  const out = new Tensor(a.backend, s, shape, a.dtype);
  const inv = new Array(nd);
  d.forEach((x, i) => (inv[x] = i));
  return record(out, [a], (g) => [permute(g, inv)]);
}

/** Swaps the last two axes. */
export function transpose(a: Tensor): Tensor {
  if (a.ndim < 2) throw new RangeError(`transpose: ${fmtShape(a.shape)} has fewer than 2 dims`);
  const d = [...a.shape.keys()];
  [d[a.ndim - 2], d[a.ndim - 1]] = [d[a.ndim - 1], d[a.ndim - 2]];
  return permute(a, d);
}

/** `length` entries of `axis` starting at `start` (a contiguous copy). */
export function narrow(a: Tensor, axis: number, start: number, length: number): Tensor {
  const ax = normAxis("narrow", axis, a.ndim);
  if (
    !Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 ||
    start + length > a.shape[ax]
  ) {
    throw new RangeError(
      `narrow: [${start}, ${start + length}) is outside axis ${axis} of ${fmtShape(a.shape)}`,
    );
  }
  const st = contiguousStrides(a.shape);
  const shape = a.shape.map((x, i) => (i === ax ? length : x));
  const s = a.backend.strided(a.storage, a.dtype, { shape, strides: st, offset: start * st[ax] });
  const out = new Tensor(a.backend, s, shape, a.dtype);
  return record(out, [a], (g) => {
    const outer = numel(a.shape.slice(0, ax)), inner = numel(a.shape.slice(ax + 1));
    const gs = a.backend.unnarrow(g.storage, outer, length, inner, a.shape[ax], start);
    return [new Tensor(a.backend, gs, a.shape, "f32")];
  });
}

/**
 * a and b joined along `axis` (f32; all other dims equal): narrow's adjoint places each in a zero
 * tensor of the joined size, and the two are added (exact: every sum has one zero term).
 */
export function concat(a: Tensor, b: Tensor, axis: number): Tensor {
  sameBackend("concat", a, b);
  needDtype("concat", a, "f32", "a");
  needDtype("concat", b, "f32", "b");
  const ax = normAxis("concat", axis, a.ndim);
  if (b.ndim !== a.ndim || a.shape.some((d, i) => i !== ax && d !== b.shape[i])) {
    throw new RangeError(
      `concat: ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ outside axis ${axis}`,
    );
  }
  const la = a.shape[ax], lb = b.shape[ax], full = la + lb;
  const outer = numel(a.shape.slice(0, ax)), inner = numel(a.shape.slice(ax + 1));
  const shape = a.shape.map((d, i) => (i === ax ? full : d));
  const dev = a.backend, n = numel(shape);
  const pa = dev.unnarrow(a.storage, outer, la, inner, full, 0);
  const pb = dev.unnarrow(b.storage, outer, lb, inner, full, la);
  const s = dev.binary("add", pa, pb, [n], [1], [1]);
  dev.free(pa);
  dev.free(pb);
  return record(
    new Tensor(dev, s, shape, "f32"),
    [a, b],
    (g) => [narrow(g, ax, 0, la), narrow(g, ax, la, lb)],
  );
}

/** Converts between f32 and f16 (round to nearest even). A same-dtype cast copies. */
export function cast(a: Tensor, to: DType): Tensor {
  if (a.dtype === to) {
    const s = a.backend.strided(a.storage, a.dtype, {
      shape: [a.size],
      strides: [1],
      offset: 0,
    });
    return new Tensor(a.backend, s, a.shape, to);
  }
  if (!a.backend.hasF16 && (to === "f16" || a.dtype === "f16")) {
    throw new Error(`cast: ${a.backend.description} has no f16 support`);
  }
  const out = new Tensor(a.backend, a.backend.cast(a.storage, a.dtype, to, a.size), a.shape, to);
  return record(out, [a], () => {
    throw new Error(`autograd: cast ${a.dtype} -> ${to} is not differentiable`);
  });
}
