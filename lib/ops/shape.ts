/**
 * Data movement: permute (transpose), narrow (slice one axis), and dtype casts.
 *
 * @module
 */

import type { DType } from "../backend/backend.ts";
import { record } from "../autograd/tape.ts";
import { fmtShape, numel, Tensor } from "../tensor.ts";
import { contiguousStrides, normAxis } from "./util.ts";

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
