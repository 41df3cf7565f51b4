/**
 * WGSL elementwise kernels: unary maps and broadcasting binary ops (twins of
 * `unaryCpu` and `binaryCpu`), GELU's fused backward and the in-place accumulate.
 *
 * @module
 */

import type { BinaryOp, UnaryOp } from "../../backend.ts";
import type { Kernel } from "../engine.ts";
import { MAIN_1D, N_PARAMS, paramLayout, type ParamsOf, prelude } from "./common.ts";

/** Maximum rank of a broadcasting binary op (higher ranks are collapsed by the caller). */
export const MAX_RANK = 6;

const UNARY: Record<UnaryOp, string> = {
  exp: "exp(x)",
  log: "log(x)",
  gelu: "gelu(x)",
  neg: "-x",
  sqrt: "sqrt(x)",
  relu: "max(x, 0.0)",
  scale: "x * p_alpha()",
  geluGrad: "gelu_grad(x)",
  step: "select(0.0, 1.0, x > 0.0)",
  silu: "x * sigmoid(x)",
  siluGrad: "silu_grad(x)",
};

// GELU (GPT-2's tanh form) and its derivative; tanh written out with a clamp: some drivers return
// NaN for tanh of large arguments.
const GELU_WGSL = /* wgsl */ `
fn gelu(x: f32) -> f32 {
  let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
  let e = exp(2.0 * u);
  return 0.5 * x * (1.0 + (e - 1.0) / (e + 1.0));
}
fn gelu_grad(x: f32) -> f32 {
  let c = 0.7978845608028654;
  let u = clamp(c * (x + 0.044715 * x * x * x), -15.0, 15.0);
  let e = exp(2.0 * u);
  let t = (e - 1.0) / (e + 1.0);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x);
}
// σ(x) from e^-|x| (never overflows) and SiLU's derivative; twins of kernels.ts' sigmoid.
fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}
fn silu_grad(x: f32) -> f32 {
  let s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}`;

/** Parameters of {@link unaryKernel}: the element count and `alpha` (the factor of `scale`). */
export const UNARY_PARAMS = paramLayout({ n: "u32", alpha: "f32" });
/** Launcher of {@link unaryKernel}. Dispatch: `groups1d(n)`. */
export function unaryParams(p: ParamsOf<typeof UNARY_PARAMS>): number[] {
  return UNARY_PARAMS.pack(p);
}

/** out[i] = f(a[i]); params: {@link UNARY_PARAMS}. Bindings: A, O. */
export function unaryKernel(op: UnaryOp): Kernel {
  return {
    key: `unary:${op}`,
    code: `${prelude(UNARY_PARAMS)}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
${GELU_WGSL}
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  let x = A[i];
  O[i] = ${UNARY[op]};
}`,
  };
}

const BINARY: Record<BinaryOp, string> = { add: "x + y", sub: "x - y", mul: "x * y", div: "x / y" };

/**
 * GELU's backward `dx[i] = g[i] · gelu'(x[i])` in one pass (twin: `geluBackwardCpu`); params:
 * `N_PARAMS` (launcher `nParams`).
 * Bindings: X, G (read), O. Dispatch: `groups1d(n)`.
 */
export function geluBackwardKernel(): Kernel {
  return {
    key: "gelu_backward",
    code: `${prelude(N_PARAMS)}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${GELU_WGSL}
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  O[i] = G[i] * gelu_grad(X[i]);
}`,
  };
}

/**
 * In place `D[i] = D[i] + S[i]` for i < n (twin: `CpuBackend.accumulate`); params:
 * `N_PARAMS` (launcher `nParams`).
 * Bindings: S (read), D (read-write). Dispatch: `groups1d(n)`.
 */
export function accumulateKernel(): Kernel {
  return {
    key: "accumulate",
    code: `${prelude(N_PARAMS)}
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read_write> D: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  D[i] = D[i] + S[i];
}`,
  };
}

/**
 * Parameters of {@link binaryKernel}: n outputs, the rank, and the broadcast shape and the strides
 * of a and b (rank ≤ {@link MAX_RANK} entries each).
 */
export const BINARY_PARAMS = paramLayout({
  n: "u32",
  rank: "u32",
  shape: ["u32", MAX_RANK],
  aStrides: ["u32", MAX_RANK],
  bStrides: ["u32", MAX_RANK],
});
/** Launcher of {@link binaryKernel}. Dispatch: `groups1d(n)`. */
export function binaryParams(p: ParamsOf<typeof BINARY_PARAMS>): number[] {
  return BINARY_PARAMS.pack(p);
}

/**
 * out[i] = a[ia] op b[ib] over a broadcast shape of rank ≤ 6; params: {@link BINARY_PARAMS}.
 * Bindings: A, B, O.
 */
export function binaryKernel(op: BinaryOp): Kernel {
  return {
    key: `binary:${op}`,
    code: `${prelude(BINARY_PARAMS)}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  let rank = p_rank();
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = 0u; d < rank; d++) {
    let ax = rank - 1u - d;
    let n = p_shape(ax);
    let c = rem % n;
    rem = rem / n;
    ia += c * p_aStrides(ax);
    ib += c * p_bStrides(ax);
  }
  let x = A[ia];
  let y = B[ib];
  O[i] = ${BINARY[op]};
}`,
  };
}
