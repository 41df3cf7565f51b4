/**
 * Elementwise ops: broadcasting add/sub/mul/div, scale, and unary maps (exp, log, gelu, …).
 *
 * @module
 */

import type { BinaryOp, UnaryOp } from "../backend/backend.ts";
import { activeTape, record } from "../autograd/record.ts";
import { fmtShape, scope, Tensor } from "../tensor.ts";
import { sumTo } from "./_adjoint.ts";
import { contiguousStrides, needDtype, sameBackend } from "./util.ts";

/** The numpy broadcast of two shapes, or an error naming both. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1, y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new RangeError(
        `${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast (dim ${i}: ${x} vs ${y})`,
      );
    }
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Strides of `shape` read as `out` (0 on broadcast axes). */
function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const own = contiguousStrides(shape);
  const k = out.length - shape.length;
  return out.map((d, i) => (i < k || shape[i - k] === 1 && d !== 1 ? 0 : own[i - k]));
}

/** Drops size-1 axes and merges axes that are contiguous in all operands (keeps rank ≤ 6). */
function collapse(shape: number[], sa: number[], sb: number[]): [number[], number[], number[]] {
  const s: number[] = [], a: number[] = [], b: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const j = s.length - 1;
    if (j >= 0 && a[j] === sa[i] * shape[i] && b[j] === sb[i] * shape[i]) {
      s[j] *= shape[i];
      a[j] = sa[i];
      b[j] = sb[i];
    } else {
      s.push(shape[i]);
      a.push(sa[i]);
      b.push(sb[i]);
    }
  }
  return s.length ? [s, a, b] : [[1], [0], [0]];
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  sameBackend(op, a, b);
  needDtype(op, a, "f32", "a");
  needDtype(op, b, "f32", "b");
  const shape = broadcastShapes(op, a.shape, b.shape);
  const [s, sa, sb] = collapse(
    shape,
    broadcastStrides(a.shape, shape),
    broadcastStrides(b.shape, shape),
  );
  if (s.length > 6) throw new RangeError(`${op}: broadcast of rank ${s.length} > 6 unsupported`);
  const out = new Tensor(
    a.backend,
    a.backend.binary(op, a.storage, b.storage, s, sa, sb),
    shape,
    "f32",
  );
  return record(out, [a, b], (g, needs) =>
    scope(() => {
      switch (op) {
        case "add":
          return [needs[0] ? sumTo(g, a.shape) : null, needs[1] ? sumTo(g, b.shape) : null];
        case "sub":
          return [needs[0] ? sumTo(g, a.shape) : null, needs[1] ? sumTo(neg(g), b.shape) : null];
        case "mul":
          return [
            needs[0] ? sumTo(mul(g, b), a.shape) : null,
            needs[1] ? sumTo(mul(g, a), b.shape) : null,
          ];
        case "div": // d(a/b)/db = -a/b² = -out/b
          return [
            needs[0] ? sumTo(div(g, b), a.shape) : null,
            needs[1] ? sumTo(neg(mul(g, div(out, b))), b.shape) : null,
          ];
      }
    }));
}

/** `a + b` with broadcasting. */
export function add(a: Tensor, b: Tensor): Tensor {
  return binary("add", a, b);
}
/** `a - b` with broadcasting. */
export function sub(a: Tensor, b: Tensor): Tensor {
  return binary("sub", a, b);
}
/** `a * b` (elementwise) with broadcasting. */
export function mul(a: Tensor, b: Tensor): Tensor {
  return binary("mul", a, b);
}
/** `a / b` with broadcasting. */
export function div(a: Tensor, b: Tensor): Tensor {
  return binary("div", a, b);
}

function unary(op: UnaryOp, a: Tensor, alpha = 0): Tensor {
  needDtype(op, a, "f32");
  const out = new Tensor(a.backend, a.backend.unary(op, a.storage, a.size, alpha), a.shape, "f32");
  return record(out, [a], (g) => scope(() => [unaryBackward(op, a, out, g, alpha)]));
}

/** Gradient of a unary op: g · f'(a), written with the output where that is cheaper. */
function unaryBackward(op: UnaryOp, a: Tensor, out: Tensor, g: Tensor, alpha: number): Tensor {
  switch (op) {
    case "exp":
      return mul(g, out);
    case "log":
      return div(g, a);
    case "gelu": // g · gelu'(a) in one pass (the same f32 values as mul(g, unary("geluGrad", a)))
      return new Tensor(
        a.backend,
        a.backend.geluBackward(a.storage, g.storage, a.size),
        a.shape,
        "f32",
      );
    case "neg":
      return neg(g);
    case "sqrt":
      return div(scale(g, 0.5), out);
    case "scale":
      return scale(g, alpha);
    case "relu":
      return mul(g, unary("step", a));
    case "silu":
      return mul(g, unary("siluGrad", a));
    case "geluGrad":
    case "step":
    case "siluGrad":
      throw new Error(`autograd: ${op} has no backward (second derivatives are not supported)`);
  }
}

/**
 * SiLU, x · σ(x) (Llama's activation), as one op: the tape keeps only x, and the backward is
 * g · σ(x)·(1 + x·(1 − σ(x))). σ comes from e^-|x|, so no value or gradient overflows.
 */
export function silu(a: Tensor): Tensor {
  return unary("silu", a);
}

/** `a · s` for a number s. */
export function scale(a: Tensor, s: number): Tensor {
  return unary("scale", a, s);
}
/** `exp(a)`. */
export function exp(a: Tensor): Tensor {
  return unary("exp", a);
}
/** Natural log. */
export function log(a: Tensor): Tensor {
  return unary("log", a);
}
/**
 * GELU, GPT-2's tanh approximation. When a tape records it and the backend can
 * (`Backend.geluWithGrad`, the CPU), the forward also keeps gelu'(a), from the same tanh, so the
 * backward is one multiply (the same f32 values as recomputing it).
 */
export function gelu(a: Tensor): Tensor {
  const tape = activeTape();
  if (!a.backend.geluWithGrad || !tape || !tape.needsGrad(a)) return unary("gelu", a);
  needDtype("gelu", a, "f32");
  const r = a.backend.geluWithGrad(a.storage, a.size);
  const y = new Tensor(a.backend, r.y, a.shape, "f32");
  const d = new Tensor(a.backend, r.dydx, a.shape, "f32");
  // d rides along as an input that needs no gradient, so scopes keep it for the backward.
  return record(y, [a, d], (g) => scope(() => [mul(g, d), null]));
}
/** `-a`. */
export function neg(a: Tensor): Tensor {
  return unary("neg", a);
}
/** `sqrt(a)`. */
export function sqrt(a: Tensor): Tensor {
  return unary("sqrt", a);
}
/** `max(a, 0)`. */
export function relu(a: Tensor): Tensor {
  return unary("relu", a);
}
