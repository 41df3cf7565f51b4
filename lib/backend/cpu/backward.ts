/**
 * CPU reference kernels for the backward passes and optimizer steps that are not compositions of
 * forward ops. Each has a WGSL twin in `lib/backend/webgpu/kernels/backward.ts`.
 *
 * @module
 */

import type { AdamParams } from "../backend.ts";

/** √(2/π), GELU's constant (the same double `Math.sqrt(2 / Math.PI)` gives every time). */
export const GELU_C: number = Math.sqrt(2 / Math.PI);

/** d/dx of GPT-2's tanh GELU. */
export function geluGrad(x: number): number {
  const c = GELU_C;
  const t = Math.tanh(c * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
}

/**
 * GELU and its derivative from one tanh per element: y as `gelu` gives it and dydx as
 * `geluGrad` gives it (the same expressions of the same tanh, so bit-identical to both).
 */
export function geluWithGradCpu(x: Float32Array): { y: Float32Array; dydx: Float32Array } {
  const y = new Float32Array(x.length), dydx = new Float32Array(x.length);
  const c = GELU_C;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const t = Math.tanh(c * (v + 0.044715 * v * v * v));
    y[i] = 0.5 * v * (1 + t);
    dydx[i] = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v);
  }
  return { y, dydx };
}

/** GELU's backward in one pass: dx[i] = g[i] · f32(gelu'(x[i])), the f32 values `mul(g,
 * unary("geluGrad", x))` gives (a product of two f32 is exact in f64, so one rounding). */
export function geluBackwardCpu(x: Float32Array, g: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = g[i] * Math.fround(geluGrad(x[i]));
  return out;
}

/**
 * Softmax's backward over rows of `cols`: dx = y · (g − Σ g·y), with the f32 roundings of the
 * composed ops (mul, sum over the row in float64 then f32, sub, mul) in the same order, so it
 * is bit-identical to them.
 */
export function softmaxBackwardCpu(
  y: Float32Array,
  g: Float32Array,
  rows: number,
  cols: number,
): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let acc = 0;
    for (let c = 0; c < cols; c++) acc += Math.fround(g[o + c] * y[o + c]);
    const s = Math.fround(acc);
    for (let c = 0; c < cols; c++) out[o + c] = y[o + c] * Math.fround(g[o + c] - s);
  }
  return out;
}

/**
 * LayerNorm's statistics of x[o … o+cols): [mean, 1/√(var + eps)] with the biased variance, in
 * float64 (shared by `layerNormCpu` and {@link layerNormBackwardCpu}).
 */
export function rowMeanRstd(
  x: Float32Array,
  o: number,
  cols: number,
  eps: number,
): [number, number] {
  let mean = 0;
  for (let c = 0; c < cols; c++) mean += x[o + c];
  mean /= cols;
  let v = 0;
  for (let c = 0; c < cols; c++) v += (x[o + c] - mean) ** 2;
  return [mean, 1 / Math.sqrt(v / cols + eps)];
}

/**
 * LayerNorm backward. x, dy: [rows, cols]; gamma: [cols].
 * xhat = (x - μ)·rstd; dx = rstd · (dxhat - mean(dxhat) - xhat · mean(dxhat · xhat)),
 * dxhat = dy · γ; dγ = Σ_rows dy · xhat; dβ = Σ_rows dy.
 */
export function layerNormBackwardCpu(
  x: Float32Array,
  gamma: Float32Array,
  dy: Float32Array,
  rows: number,
  cols: number,
  eps: number,
): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array } {
  const dx = new Float32Array(rows * cols);
  const dgamma = new Float32Array(cols), dbeta = new Float32Array(cols);
  const xhat = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const [mean, rstd] = rowMeanRstd(x, o, cols, eps);
    let m1 = 0, m2 = 0;
    for (let c = 0; c < cols; c++) {
      xhat[c] = (x[o + c] - mean) * rstd;
      const dxh = dy[o + c] * gamma[c];
      m1 += dxh;
      m2 += dxh * xhat[c];
      dgamma[c] += dy[o + c] * xhat[c]; // column sums accumulate in row order
      dbeta[c] += dy[o + c];
    }
    m1 /= cols;
    m2 /= cols;
    for (let c = 0; c < cols; c++) dx[o + c] = rstd * (dy[o + c] * gamma[c] - m1 - xhat[c] * m2);
  }
  return { dx, dgamma, dbeta };
}

/**
 * dtable[v, :] = Σ_{n : ids[n] = start + v} dy[n, :]; dy: [n, C] → [V, C], in position order.
 * With `start` and `total`, the table is rows start … start + V - 1 of a table of `total` rows
 * (a row chunk): ids of other rows add nothing, one outside [0, total) is an error.
 */
export function embeddingBackwardCpu(
  ids: Int32Array,
  dy: Float32Array,
  n: number,
  V: number,
  C: number,
  start = 0,
  total = V,
): Float32Array {
  const out = new Float32Array(V * C);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (!(id >= 0 && id < total)) {
      throw new RangeError(`embedding: id ${id} at ${i} is outside [0, ${total})`);
    }
    const r = id - start;
    if (r < 0 || r >= V) continue; // another chunk's row
    for (let c = 0; c < C; c++) out[r * C + c] += dy[i * C + c];
  }
  return out;
}

/**
 * dlogits[r, :] = (softmax(logits[r]) - onehot(targets[r])) · g[r]; with `ignore`, rows whose
 * target is -100 get zeros.
 */
export function crossEntropyBackwardCpu(
  logits: Float32Array,
  targets: Int32Array,
  g: Float32Array,
  rows: number,
  V: number,
  ignore = false,
): Float32Array {
  const out = new Float32Array(rows * V);
  for (let r = 0; r < rows; r++) {
    if (ignore && targets[r] === -100) continue; // the row stays 0
    const o = r * V;
    let max = -Infinity;
    for (let c = 0; c < V; c++) max = Math.max(max, logits[o + c]);
    let sum = 0;
    for (let c = 0; c < V; c++) sum += Math.exp(logits[o + c] - max);
    for (let c = 0; c < V; c++) {
      const p = Math.exp(logits[o + c] - max) / sum;
      out[o + c] = (p - (c === targets[r] ? 1 : 0)) * g[r];
    }
  }
  return out;
}

/** Zeros of [outer, full, inner] with a: [outer, len, inner] written at offset `start`. */
export function unnarrowCpu(
  a: Float32Array,
  outer: number,
  len: number,
  inner: number,
  full: number,
  start: number,
): Float32Array {
  const out = new Float32Array(outer * full * inner);
  for (let o = 0; o < outer; o++) {
    out.set(a.subarray(o * len * inner, (o + 1) * len * inner), (o * full + start) * inner);
  }
  return out;
}

/**
 * One AdamW step in place (PyTorch's order: decoupled decay p ← p·(1 - lr·wd), then
 * m ← β1·m + (1-β1)·g, v ← β2·v + (1-β2)·g², p ← p - lr · (m / bc1) / (√(v / bc2) + eps)),
 * with 1-β1 and 1-β2 taken from `h` (computed in float64, then rounded to f32 once).
 */
export function adamwCpu(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  n: number,
  h: AdamParams,
  gscale: Float32Array | null = null,
): void {
  const f = Math.fround;
  const lr = f(h.lr), b1 = f(h.beta1), b2 = f(h.beta2), eps = f(h.eps), wd = f(h.weightDecay);
  const bc1 = f(h.biasCorrection1), bc2 = f(h.biasCorrection2);
  const c1 = f(h.oneMinusBeta1), c2 = f(h.oneMinusBeta2); // 1 - β from float64, not 1 - f32(β)
  for (let i = 0; i < n; i++) {
    const gi = gscale ? f(g[i] * gscale[1]) : g[i];
    m[i] = f(b1 * m[i]) + f(c1 * gi);
    v[i] = f(b2 * v[i]) + f(f(c2 * gi) * gi);
    const pd = f(p[i] - f(f(lr * wd) * p[i]));
    const den = f(f(Math.sqrt(f(v[i] / bc2))) + eps);
    p[i] = f(pd - f(lr * f(f(m[i] / bc1) / den)));
  }
}

/** One SGD-with-momentum step in place: buf ← μ·buf + g + wd·p; p ← p - lr·buf. */
export function sgdCpu(
  p: Float32Array,
  g: Float32Array,
  buf: Float32Array,
  n: number,
  lr: number,
  momentum: number,
  weightDecay: number,
  gscale: Float32Array | null = null,
): void {
  const f = Math.fround;
  const l = f(lr), mu = f(momentum), wd = f(weightDecay);
  for (let i = 0; i < n; i++) {
    const gi = gscale ? f(g[i] * gscale[1]) : g[i];
    buf[i] = f(f(f(mu * buf[i]) + gi) + f(wd * p[i]));
    p[i] = f(p[i] - f(l * buf[i]));
  }
}

/**
 * Twin of the `sumsq` kernel: Σ g² of `n` elements in float64, written to the first of the slot's
 * `parts` partials (the others are zeroed).
 */
export function sumSquaresCpu(
  g: Float32Array,
  n: number,
  partials: Float32Array,
  slot: number,
  parts: number,
): void {
  let s = 0;
  for (let i = 0; i < n; i++) s += g[i] * g[i];
  partials.fill(0, slot * parts, (slot + 1) * parts);
  partials[slot * parts] = s;
}

/** Twin of the `clip_factor` kernel: [norm, min(1, maxNorm / (norm + 1e-6))]. */
export function clipFactorCpu(
  partials: Float32Array,
  count: number,
  maxNorm: number,
): Float32Array {
  let s = 0;
  for (let i = 0; i < count; i++) s += partials[i];
  const norm = Math.sqrt(s);
  return new Float32Array([norm, Math.min(1, maxNorm / (norm + 1e-6))]);
}
