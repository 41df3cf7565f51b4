/**
 * WGSL row kernels: softmax / log-softmax (optionally causal), LayerNorm and cross-entropy; twins
 * of `softmaxCpu`, `layerNormCpu` and `crossEntropyCpu`.
 *
 * One workgroup of {@link ROW_WG} threads per row (rows fold into y past 65,535, see
 * {@link rowGroups}): the threads stride over the row's columns together (neighbouring threads
 * read neighbouring addresses) and combine their partial max / sums by a tree reduction in
 * workgroup memory. A thread per row would leave a big GPU nearly idle at 8,192 rows and read
 * 50,257-wide logit rows with no coalescing.
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { paramLayout, type ParamsOf, prelude } from "./common.ts";

/** Threads per row. */
export const ROW_WG = 64;

/** Workgroup grid for `rows` rows: [x, y, 1] with x·y ≥ rows and x ≤ 65,535. */
export function rowGroups(rows: number): [number, number, number] {
  const x = Math.max(1, Math.min(rows, 65535));
  return [x, Math.ceil(rows / x), 1];
}

/**
 * Entry point and reductions of a row kernel: `row` is this workgroup's row, `lid` the thread;
 * `wgSum` / `wgMax` combine one value per thread (call them from every thread: they hold
 * barriers). The caller returns early only on a whole-workgroup condition (r ≥ rows).
 */
export const ROW_MAIN = /* wgsl */ `
const WG: u32 = ${ROW_WG}u;
var<workgroup> red: array<f32, ${ROW_WG}>;
fn wgSum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wgMax(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lidv: vec3<u32>)`;

/** The row index and thread id, at the top of a {@link ROW_MAIN} body. */
const ROW_IDS = `
  let r = wg.y * nwg.x + wg.x;
  let lid = lidv.x;`;

/** Parameters of {@link softmaxKernel}: [rows, cols], log-softmax or softmax, causal mask. */
export const SOFTMAX_PARAMS = paramLayout({
  rows: "u32",
  cols: "u32",
  log: "bool",
  causal: "bool",
});
/** Launcher of {@link softmaxKernel}. Dispatch: {@link rowGroups}(rows). */
export function softmaxParams(p: ParamsOf<typeof SOFTMAX_PARAMS>): number[] {
  return SOFTMAX_PARAMS.pack(p);
}

/** params: {@link SOFTMAX_PARAMS}. Bindings: L, O. Dispatch: {@link rowGroups}(rows). */
export function softmaxKernel(): Kernel {
  return {
    key: "softmax",
    code: `${prelude(SOFTMAX_PARAMS)}
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
${ROW_MAX_SUMEXP}
${ROW_MAIN} {
${ROW_IDS}
  let rows = p_rows();
  let cols = p_cols();
  let isLog = p_log();
  if (r >= rows) { return; }
  var last = cols - 1u;
  if (p_causal()) { last = r % cols; }
  let o = r * cols;
  let ms = rowMaxSumExp(o, last + 1u, lid);
  let mx = ms.x;
  let sum = ms.y;
  let lse = log(sum);
  for (var c = lid; c < cols; c += WG) {
    if (c > last) {
      O[o + c] = select(0.0, neg_inf(), isLog);
    } else if (isLog) {
      O[o + c] = L[o + c] - mx - lse;
    } else {
      O[o + c] = exp(L[o + c] - mx) / sum;
    }
  }
}`,
  };
}

/**
 * The max and the sum of exp(L − max) over L[o … o+n) (softmax's and cross-entropy's row
 * reductions), as [max, sum]; needs a binding `L` and {@link ROW_MAIN}'s reductions.
 */
export const ROW_MAX_SUMEXP = /* wgsl */ `
fn rowMaxSumExp(o: u32, n: u32, lid: u32) -> vec2<f32> {
  var mx: f32 = neg_inf();
  for (var c = lid; c < n; c += WG) { mx = max(mx, L[o + c]); }
  mx = wgMax(mx, lid);
  var sum: f32 = 0.0;
  for (var c = lid; c < n; c += WG) { sum += exp(L[o + c] - mx); }
  return vec2<f32>(mx, wgSum(sum, lid));
}`;

/**
 * LayerNorm's row statistics [mean, 1/√(var + eps)] of X[o … o+cols) (biased variance), for the
 * forward and backward kernels; needs a binding `X` and {@link ROW_MAIN}'s reductions.
 */
export const ROW_MEAN_RSTD = /* wgsl */ `
fn rowMeanRstd(o: u32, cols: u32, eps: f32, lid: u32) -> vec2<f32> {
  var s: f32 = 0.0;
  for (var c = lid; c < cols; c += WG) { s += X[o + c]; }
  let mean = wgSum(s, lid) / f32(cols);
  var v: f32 = 0.0;
  for (var c = lid; c < cols; c += WG) { let d = X[o + c] - mean; v += d * d; }
  return vec2<f32>(mean, 1.0 / sqrt(wgSum(v, lid) / f32(cols) + eps));
}`;

/** Parameters of {@link layerNormKernel} (and of its backward's row pass): [rows, cols], eps. */
export const LAYER_NORM_PARAMS = paramLayout({ rows: "u32", cols: "u32", eps: "f32" });
/** Launcher of {@link layerNormKernel}. Dispatch: {@link rowGroups}(rows). */
export function layerNormParams(p: ParamsOf<typeof LAYER_NORM_PARAMS>): number[] {
  return LAYER_NORM_PARAMS.pack(p);
}

/** params: {@link LAYER_NORM_PARAMS}. Bindings: x, gamma, beta, out. Dispatch: rowGroups. */
export function layerNormKernel(): Kernel {
  return {
    key: "layernorm",
    code: `${prelude(LAYER_NORM_PARAMS)}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> Bt: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
${ROW_MEAN_RSTD}
${ROW_MAIN} {
${ROW_IDS}
  let rows = p_rows();
  let cols = p_cols();
  if (r >= rows) { return; }
  let o = r * cols;
  let st = rowMeanRstd(o, cols, p_eps(), lid);
  let mean = st.x;
  let rstd = st.y;
  for (var c = lid; c < cols; c += WG) { O[o + c] = (X[o + c] - mean) * rstd * G[c] + Bt[c]; }
}`,
  };
}

/**
 * Parameters of {@link crossEntropyKernel} (and of its backward): rows of V logits, and whether a
 * target of -100 is ignored.
 */
export const CROSS_ENTROPY_PARAMS = paramLayout({ rows: "u32", V: "u32", ignore: "bool" });
/** Launcher of {@link crossEntropyKernel}. Dispatch: {@link rowGroups}(rows). */
export function crossEntropyParams(p: ParamsOf<typeof CROSS_ENTROPY_PARAMS>): number[] {
  return CROSS_ENTROPY_PARAMS.pack(p);
}

/**
 * params: {@link CROSS_ENTROPY_PARAMS}. Bindings: logits, targets (i32), out. With `ignore` a
 * target of -100 gives 0 (the row's max and sum are still computed: the barriers stay in uniform
 * control flow); any other target outside [0, V) gives NaN. Dispatch: rowGroups.
 */
export function crossEntropyKernel(): Kernel {
  return {
    key: "cross_entropy",
    code: `${prelude(CROSS_ENTROPY_PARAMS)}
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<i32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${ROW_MAX_SUMEXP}
${ROW_MAIN} {
${ROW_IDS}
  let rows = p_rows();
  let V = p_V();
  if (r >= rows) { return; }
  let o = r * V;
  let ms = rowMaxSumExp(o, V, lid);
  let mx = ms.x;
  let sum = ms.y;
  if (lid == 0u) {
    let t = T[r];
    if (p_ignore() && t == -100) {
      O[r] = 0.0;
    } else if (t < 0 || u32(t) >= V) {
      O[r] = nan();
    } else {
      O[r] = log(sum) + mx - L[o + u32(t)];
    }
  }
}`,
  };
}
