/**
 * WGSL row kernels: softmax / log-softmax (optionally causal), LayerNorm and cross-entropy.
 * One thread per row; twins of `softmaxCpu`, `layerNormCpu` and `crossEntropyCpu`.
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { MAIN_1D, PRELUDE } from "./common.ts";

/** params: rows, cols, log, causal. */
export function softmaxKernel(): Kernel {
  return {
    key: "softmax",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let r = gidx(gid, nwg);
  let rows = pu(0u);
  let cols = pu(1u);
  let isLog = pu(2u) == 1u;
  if (r >= rows) { return; }
  var last = cols - 1u;
  if (pu(3u) == 1u) { last = r % cols; }
  let o = r * cols;
  var mx: f32 = neg_inf();
  for (var c = 0u; c <= last; c++) { mx = max(mx, A[o + c]); }
  var sum: f32 = 0.0;
  for (var c = 0u; c <= last; c++) { sum += exp(A[o + c] - mx); }
  let lse = log(sum);
  for (var c = 0u; c < cols; c++) {
    if (c > last) {
      O[o + c] = select(0.0, neg_inf(), isLog);
    } else if (isLog) {
      O[o + c] = A[o + c] - mx - lse;
    } else {
      O[o + c] = exp(A[o + c] - mx) / sum;
    }
  }
}`,
  };
}

/** params: rows, cols, eps (f32 bits). Bindings: x, gamma, beta, out. */
export function layerNormKernel(): Kernel {
  return {
    key: "layernorm",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> Bt: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let r = gidx(gid, nwg);
  let rows = pu(0u);
  let cols = pu(1u);
  if (r >= rows) { return; }
  let o = r * cols;
  var mean: f32 = 0.0;
  for (var c = 0u; c < cols; c++) { mean += X[o + c]; }
  mean = mean / f32(cols);
  var v: f32 = 0.0;
  for (var c = 0u; c < cols; c++) { let d = X[o + c] - mean; v += d * d; }
  let rstd = 1.0 / sqrt(v / f32(cols) + pf(2u));
  for (var c = 0u; c < cols; c++) { O[o + c] = (X[o + c] - mean) * rstd * G[c] + Bt[c]; }
}`,
  };
}

/** params: rows, V. Bindings: logits, targets (i32), out. A target outside [0, V) gives NaN. */
export function crossEntropyKernel(): Kernel {
  return {
    key: "cross_entropy",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<i32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let r = gidx(gid, nwg);
  let rows = pu(0u);
  let V = pu(1u);
  if (r >= rows) { return; }
  let t = T[r];
  if (t < 0 || u32(t) >= V) { O[r] = nan(); return; }
  let o = r * V;
  var mx: f32 = neg_inf();
  for (var c = 0u; c < V; c++) { mx = max(mx, L[o + c]); }
  var sum: f32 = 0.0;
  for (var c = 0u; c < V; c++) { sum += exp(L[o + c] - mx); }
  O[r] = log(sum) + mx - L[o + u32(t)];
}`,
  };
}
