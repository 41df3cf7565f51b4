/**
 * WGSL backward passes and optimizer steps (twins of `lib/backend/cpu/backward.ts`).
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { MAIN_1D, paramLayout, type ParamsOf, prelude } from "./common.ts";
import { EMBEDDING_PARAMS } from "./gather.ts";
import {
  CROSS_ENTROPY_PARAMS,
  LAYER_NORM_PARAMS,
  ROW_MAIN,
  ROW_MAX_SUMEXP,
  ROW_MEAN_RSTD,
} from "./rows.ts";

/**
 * LayerNorm backward, pass 1 (a workgroup per row, see `rows.ts`): dx, and each row's mean and
 * rstd into S. params: `LAYER_NORM_PARAMS` (launcher `layerNormParams`, `rows.ts`).
 * Bindings: X, G (gamma), DY, DX, S [rows, 2]. Dispatch: `rowGroups(rows)`.
 */
export function layerNormBackwardRowsKernel(): Kernel {
  return {
    key: "layernorm_bwd_rows",
    code: `${prelude(LAYER_NORM_PARAMS)}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> DY: array<f32>;
@group(0) @binding(4) var<storage, read_write> DX: array<f32>;
@group(0) @binding(5) var<storage, read_write> S: array<f32>;
${ROW_MEAN_RSTD}
${ROW_MAIN} {
  let r = wg.y * nwg.x + wg.x;
  let lid = lidv.x;
  let rows = p_rows();
  let cols = p_cols();
  if (r >= rows) { return; }
  let o = r * cols;
  let st = rowMeanRstd(o, cols, p_eps(), lid);
  let mean = st.x;
  let rstd = st.y;
  var m1: f32 = 0.0;
  var m2: f32 = 0.0;
  for (var c = lid; c < cols; c += WG) {
    let dxh = DY[o + c] * G[c];
    m1 += dxh;
    m2 += dxh * (X[o + c] - mean) * rstd;
  }
  m1 = wgSum(m1, lid) / f32(cols);
  m2 = wgSum(m2, lid) / f32(cols);
  for (var c = lid; c < cols; c += WG) {
    let xh = (X[o + c] - mean) * rstd;
    DX[o + c] = rstd * (DY[o + c] * G[c] - m1 - xh * m2);
  }
  if (lid == 0u) {
    S[2u * r] = mean;
    S[2u * r + 1u] = rstd;
  }
}`,
  };
}

/** Parameters of {@link layerNormBackwardColsKernel}: [rows, cols], the chunk length and count. */
export const LAYER_NORM_COLS_PARAMS = paramLayout({
  rows: "u32",
  cols: "u32",
  chunk: "u32",
  chunks: "u32",
});
/** Launcher of {@link layerNormBackwardColsKernel}. Dispatch: `groups1d(chunks · cols)`. */
export function layerNormBackwardColsParams(
  p: ParamsOf<typeof LAYER_NORM_COLS_PARAMS>,
): number[] {
  return LAYER_NORM_COLS_PARAMS.pack(p);
}

/**
 * LayerNorm backward, pass 2 (one thread per column and chunk of rows): partial dgamma = Σ dy·xhat
 * and dbeta = Σ dy over rows [s·chunk, (s+1)·chunk) into DG[s, c], DB[s, c] (the final sums when
 * there is one chunk). params: {@link LAYER_NORM_COLS_PARAMS}. Bindings: X, DY, S (stats), DG,
 * DB. Dispatch: groups1d(chunks · cols).
 */
export function layerNormBackwardColsKernel(): Kernel {
  return {
    key: "layernorm_bwd_cols",
    code: `${prelude(LAYER_NORM_COLS_PARAMS)}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read_write> DG: array<f32>;
@group(0) @binding(5) var<storage, read_write> DB: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let rows = p_rows();
  let cols = p_cols();
  let chunk = p_chunk();
  if (i >= p_chunks() * cols) { return; }
  let c = i % cols;
  let s = i / cols;
  var dg: f32 = 0.0;
  var db: f32 = 0.0;
  for (var r = s * chunk; r < min(rows, (s + 1u) * chunk); r++) {
    let dy = DY[r * cols + c];
    dg += dy * ((X[r * cols + c] - S[2u * r]) * S[2u * r + 1u]);
    db += dy;
  }
  DG[i] = dg;
  DB[i] = db;
}`,
  };
}

/**
 * Embedding backward as a deterministic counting sort (no float atomics), four kernels:
 * `emb_count` (u32 atomic count per id; zeroed by `emb_zero`), `emb_scan` (exclusive offsets,
 * one workgroup), `emb_scatter` (position k goes to slot OFF[id] + #{j < k : I[j] = id}, so each
 * bucket lists its positions in increasing order) and `emb_gather` (one thread per (v, c) sums
 * its bucket's rows of dy in that order: the same order, hence the same bits, as the CPU twin).
 * Work n·C + V·C + n²/2 comparisons instead of the V·C·n of scanning every position per entry.
 * Entry v holds id `start + v` (a row chunk of a bigger table; start 0: the whole table); ids
 * outside [start, start + V) are skipped. params (all): `EMBEDDING_PARAMS` (launcher
 * `embeddingParams`, `gather.ts`). Twin: `embeddingBackwardCpu`.
 */
export function embeddingBackwardKernels(): Record<
  "zero" | "count" | "scan" | "scatter" | "gather",
  Kernel
> {
  return {
    // Bindings: CNT (rw). Dispatch: groups1d(V).
    zero: {
      key: "emb_zero",
      code: `${prelude(EMBEDDING_PARAMS)}
@group(0) @binding(1) var<storage, read_write> CNT: array<u32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i < p_V()) { CNT[i] = 0u; }
}`,
    },
    // Bindings: I, CNT (rw, atomic). Dispatch: groups1d(n).
    count: {
      key: "emb_count",
      code: `${prelude(EMBEDDING_PARAMS)}
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read_write> CNT: array<atomic<u32>>;
${MAIN_1D} {
  let k = gidx(gid, nwg);
  if (k >= p_n()) { return; }
  let v = I[k] - i32(p_start());
  if (v >= 0 && u32(v) < p_V()) { atomicAdd(&CNT[u32(v)], 1u); }
}`,
    },
    // Bindings: CNT, OFF [V + 1] (rw). Dispatch: [1, 1, 1].
    scan: {
      key: "emb_scan",
      code: `${prelude(EMBEDDING_PARAMS)}
@group(0) @binding(1) var<storage, read> CNT: array<u32>;
@group(0) @binding(2) var<storage, read_write> OFF: array<u32>;
var<workgroup> part: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let V = p_V();
  let chunk = (V + 255u) / 256u;
  let lo = min(V, lid.x * chunk);
  let hi = min(V, lo + chunk);
  var s = 0u;
  for (var i = lo; i < hi; i++) { s += CNT[i]; }
  part[lid.x] = s;
  workgroupBarrier();
  if (lid.x == 0u) {
    var run = 0u;
    for (var t = 0u; t < 256u; t++) { let c = part[t]; part[t] = run; run += c; }
    OFF[V] = run;
  }
  workgroupBarrier();
  var run = part[lid.x];
  for (var i = lo; i < hi; i++) { OFF[i] = run; run += CNT[i]; }
}`,
    },
    // Bindings: I, OFF, POS [n] (rw). Dispatch: groups1d(n).
    scatter: {
      key: "emb_scatter",
      code: `${prelude(EMBEDDING_PARAMS)}
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read> OFF: array<u32>;
@group(0) @binding(3) var<storage, read_write> POS: array<u32>;
${MAIN_1D} {
  let k = gidx(gid, nwg);
  if (k >= p_n()) { return; }
  let id = I[k];
  let v = id - i32(p_start());
  if (v < 0 || u32(v) >= p_V()) { return; }
  var rank = 0u;
  for (var j = 0u; j < k; j++) { if (I[j] == id) { rank++; } }
  POS[OFF[u32(v)] + rank] = k;
}`,
    },
    // Bindings: OFF, POS, DY, O [V, C] (rw). Dispatch: groups1d(V·C).
    gather: {
      key: "emb_gather",
      code: `${prelude(EMBEDDING_PARAMS)}
@group(0) @binding(1) var<storage, read> OFF: array<u32>;
@group(0) @binding(2) var<storage, read> POS: array<u32>;
@group(0) @binding(3) var<storage, read> DY: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let V = p_V();
  let C = p_C();
  if (i >= V * C) { return; }
  let v = i / C;
  let c = i % C;
  var acc: f32 = 0.0;
  for (var s = OFF[v]; s < OFF[v + 1u]; s++) { acc += DY[POS[s] * C + c]; }
  O[i] = acc;
}`,
    },
  };
}

/**
 * Cross-entropy backward, a workgroup per row (see `rows.ts`). params: `CROSS_ENTROPY_PARAMS`
 * (launcher `crossEntropyParams`, `rows.ts`; with `ignore` rows whose target is -100 get zeros).
 * Bindings: L (logits), T (i32 targets), G [rows], O [rows, V]. Dispatch: `rowGroups(rows)`.
 */
export function crossEntropyBackwardKernel(): Kernel {
  return {
    key: "cross_entropy_bwd",
    code: `${prelude(CROSS_ENTROPY_PARAMS)}
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<i32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
${ROW_MAX_SUMEXP}
${ROW_MAIN} {
  let r = wg.y * nwg.x + wg.x;
  let lid = lidv.x;
  let rows = p_rows();
  let V = p_V();
  if (r >= rows) { return; }
  let o = r * V;
  let ms = rowMaxSumExp(o, V, lid);
  let mx = ms.x;
  let sum = ms.y;
  let t = T[r];
  let g = G[r];
  let skip = p_ignore() && t == -100;
  for (var c = lid; c < V; c += WG) {
    let p = exp(L[o + c] - mx) / sum;
    O[o + c] = select((p - select(0.0, 1.0, i32(c) == t)) * g, 0.0, skip);
  }
}`,
  };
}

/**
 * Parameters of {@link unnarrowKernel}: the [outer, len, inner] input, placed at `start` of an
 * axis of length `full`.
 */
export const UNNARROW_PARAMS = paramLayout({
  outer: "u32",
  len: "u32",
  inner: "u32",
  full: "u32",
  start: "u32",
});
/** Launcher of {@link unnarrowKernel}. Dispatch: `groups1d(outer · full · inner)`. */
export function unnarrowParams(p: ParamsOf<typeof UNNARROW_PARAMS>): number[] {
  return UNNARROW_PARAMS.pack(p);
}

/** narrow's adjoint. params: {@link UNNARROW_PARAMS}. Bindings: A, O. */
export function unnarrowKernel(): Kernel {
  return {
    key: "unnarrow",
    code: `${prelude(UNNARROW_PARAMS)}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let outer = p_outer();
  let len = p_len();
  let inner = p_inner();
  let full = p_full();
  let start = p_start();
  if (i >= outer * full * inner) { return; }
  let k = i % inner;
  let j = (i / inner) % full;
  let o = i / (inner * full);
  if (j >= start && j < start + len) {
    O[i] = A[(o * len + (j - start)) * inner + k];
  } else {
    O[i] = 0.0;
  }
}`,
  };
}

/**
 * Parameters of {@link adamwKernel}: n elements, the hyperparameters (named as in `AdamParams`;
 * 1-beta1 and 1-beta2 computed in float64 on the host, not as 1.0 - b in f32), and whether G is
 * scaled by the clipping factor.
 */
export const ADAMW_PARAMS = paramLayout({
  n: "u32",
  lr: "f32",
  beta1: "f32",
  beta2: "f32",
  eps: "f32",
  weightDecay: "f32",
  biasCorrection1: "f32",
  biasCorrection2: "f32",
  scaled: "bool",
  oneMinusBeta1: "f32",
  oneMinusBeta2: "f32",
});
/** Launcher of {@link adamwKernel}. Dispatch: `groups1d(n)`. */
export function adamwParams(p: ParamsOf<typeof ADAMW_PARAMS>): number[] {
  return ADAMW_PARAMS.pack(p);
}

/**
 * AdamW in place. params: {@link ADAMW_PARAMS}. Bindings: P (rw), G, M (rw), V (rw), S ([norm,
 * factor]: G is multiplied by S[1] when scaled).
 */
export function adamwKernel(): Kernel {
  return {
    key: "adamw",
    code: `${prelude(ADAMW_PARAMS)}
@group(0) @binding(1) var<storage, read_write> P: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> V: array<f32>;
@group(0) @binding(5) var<storage, read> S: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  let lr = p_lr();
  let b1 = p_beta1();
  let b2 = p_beta2();
  var g = G[i];
  if (p_scaled()) { g *= S[1]; }
  let m = b1 * M[i] + p_oneMinusBeta1() * g;
  let v = b2 * V[i] + p_oneMinusBeta2() * g * g;
  M[i] = m;
  V[i] = v;
  let pd = P[i] - lr * p_weightDecay() * P[i];
  P[i] = pd - lr * ((m / p_biasCorrection1()) / (sqrt(v / p_biasCorrection2()) + p_eps()));
}`,
  };
}

/** Most tensors one {@link adamwManyKernel} dispatch takes (its offsets and decays fill the 32 words). */
export const ADAMW_MANY_MAX = 11;

// The layout of adamwManyKernel(k) (the array lengths depend on k).
const manyLayout = (k: number) =>
  paramLayout({
    lr: "f32",
    beta1: "f32",
    beta2: "f32",
    eps: "f32",
    biasCorrection1: "f32",
    biasCorrection2: "f32",
    scaled: "bool",
    oneMinusBeta1: "f32",
    oneMinusBeta2: "f32",
    offsets: ["u32", k + 1],
    weightDecays: ["f32", k],
  });
/** The parameter layout of {@link adamwManyKernel}. */
export type AdamwManyLayout = ReturnType<typeof manyLayout>;
const MANY_LAYOUTS: AdamwManyLayout[] = [];

/**
 * Parameters of {@link adamwManyKernel} for `k` tensors: the hyperparameters of
 * {@link ADAMW_PARAMS} but the decay, k + 1 element offsets (the last is the total), then the k
 * weight decays.
 */
export function adamwManyLayout(k: number): AdamwManyLayout {
  if (!(Number.isInteger(k) && k >= 1 && k <= ADAMW_MANY_MAX)) {
    throw new RangeError(`adamwMany: ${k} tensors`);
  }
  return MANY_LAYOUTS[k - 1] ??= manyLayout(k);
}
/**
 * Launcher of {@link adamwManyKernel}: k = `weightDecays.length` tensors, with k + 1 `offsets`.
 * Dispatch: `groups1d(total)`.
 */
export function adamwManyParams(p: ParamsOf<AdamwManyLayout>): number[] {
  const k = p.weightDecays.length;
  if (p.offsets.length !== k + 1) {
    throw new RangeError(`adamwMany: ${p.offsets.length} offsets for ${k} tensors`);
  }
  return adamwManyLayout(k).pack(p);
}

/**
 * AdamW on `k` tensors in one dispatch over their concatenated elements, with the arithmetic of
 * {@link adamwKernel} per element (bit-identical). params: {@link adamwManyLayout}(k).
 * Bindings: S ([norm, factor]), then P, G, M, V of each tensor. Dispatch: groups1d(total).
 */
export function adamwManyKernel(k: number): Kernel {
  const layout = adamwManyLayout(k);
  const decl: string[] = [], body: string[] = [];
  for (let t = 0; t < k; t++) {
    const b = 2 + 4 * t;
    decl.push(
      `@group(0) @binding(${b}) var<storage, read_write> P${t}: array<f32>;`,
      `@group(0) @binding(${b + 1}) var<storage, read> G${t}: array<f32>;`,
      `@group(0) @binding(${b + 2}) var<storage, read_write> M${t}: array<f32>;`,
      `@group(0) @binding(${b + 3}) var<storage, read_write> V${t}: array<f32>;`,
    );
    body.push(`  ${t ? "else " : ""}if (i < p_offsets(${t + 1}u)) {
    let j = i - p_offsets(${t}u);
    var g = G${t}[j];
    if (scaled) { g *= S[1]; }
    let m = b1 * M${t}[j] + c1 * g;
    let v = b2 * V${t}[j] + c2 * g * g;
    M${t}[j] = m;
    V${t}[j] = v;
    let pd = P${t}[j] - lr * p_weightDecays(${t}u) * P${t}[j];
    P${t}[j] = pd - lr * ((m / p_biasCorrection1()) / (sqrt(v / p_biasCorrection2()) + p_eps()));
  }`);
  }
  return {
    key: `adamw_many:${k}`,
    code: `${prelude(layout)}
@group(0) @binding(1) var<storage, read> S: array<f32>;
${decl.join("\n")}
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_offsets(${k}u)) { return; }
  let lr = p_lr();
  let b1 = p_beta1();
  let b2 = p_beta2();
  let scaled = p_scaled();
  let c1 = p_oneMinusBeta1();
  let c2 = p_oneMinusBeta2();
${body.join("\n")}
}`,
  };
}

/** Parameters of {@link sgdKernel}: n elements, the hyperparameters, and whether G is scaled. */
export const SGD_PARAMS = paramLayout({
  n: "u32",
  lr: "f32",
  momentum: "f32",
  weightDecay: "f32",
  scaled: "bool",
});
/** Launcher of {@link sgdKernel}. Dispatch: `groups1d(n)`. */
export function sgdParams(p: ParamsOf<typeof SGD_PARAMS>): number[] {
  return SGD_PARAMS.pack(p);
}

/**
 * SGD with momentum in place. params: {@link SGD_PARAMS}. Bindings: P (rw), G, B (rw), S (as in
 * {@link adamwKernel}).
 */
export function sgdKernel(): Kernel {
  return {
    key: "sgd",
    code: `${prelude(SGD_PARAMS)}
@group(0) @binding(1) var<storage, read_write> P: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> B: array<f32>;
@group(0) @binding(4) var<storage, read> S: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  var g = G[i];
  if (p_scaled()) { g *= S[1]; }
  let b = p_momentum() * B[i] + g + p_weightDecay() * P[i];
  B[i] = b;
  P[i] = P[i] - p_lr() * b;
}`,
  };
}

/** Parameters of {@link sumSquaresKernel}: n elements, and the slot of its partials. */
export const SUM_SQUARES_PARAMS = paramLayout({ n: "u32", slot: "u32" });
/** Launcher of {@link sumSquaresKernel}. Dispatch: `[NORM_PARTIALS, 1, 1]`. */
export function sumSquaresParams(p: ParamsOf<typeof SUM_SQUARES_PARAMS>): number[] {
  return SUM_SQUARES_PARAMS.pack(p);
}

/**
 * Sum of squares of G (n elements) into partials: each of the NORM_PARTIALS workgroups
 * grid-strides over G and writes its tree-reduced sum to OUT[slot · NORM_PARTIALS + wg].
 * params: {@link SUM_SQUARES_PARAMS}. Bindings: G, OUT (rw). Dispatch: [NORM_PARTIALS, 1, 1].
 */
export function sumSquaresKernel(): Kernel {
  return {
    key: "sumsq",
    code: `${prelude(SUM_SQUARES_PARAMS)}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = p_n();
  var s = 0.0;
  for (var i = wg.x * 256u + lid.x; i < n; i += nwg.x * 256u) { s = fma(G[i], G[i], s); }
  red[lid.x] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid.x < w) { red[lid.x] += red[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { OUT[p_slot() * nwg.x + wg.x] = red[0]; }
}`,
  };
}

/** Parameters of {@link clipFactorKernel}: the number of partials and the largest norm. */
export const CLIP_FACTOR_PARAMS = paramLayout({ count: "u32", maxNorm: "f32" });
/** Launcher of {@link clipFactorKernel}. Dispatch: `[1, 1, 1]`. */
export function clipFactorParams(p: ParamsOf<typeof CLIP_FACTOR_PARAMS>): number[] {
  return CLIP_FACTOR_PARAMS.pack(p);
}

/**
 * Global-norm clipping factor: sums `count` partials, writes OUT = [norm, min(1, maxNorm /
 * (norm + 1e-6))]. params: {@link CLIP_FACTOR_PARAMS}. Bindings: PART, OUT (rw).
 * Dispatch: [1, 1, 1].
 */
export function clipFactorKernel(): Kernel {
  return {
    key: "clip_factor",
    code: `${prelude(CLIP_FACTOR_PARAMS)}
@group(0) @binding(1) var<storage, read> PART: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var i = lid.x; i < p_count(); i += 256u) { s += PART[i]; }
  red[lid.x] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid.x < w) { red[lid.x] += red[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    let norm = sqrt(red[0]);
    OUT[0] = norm;
    OUT[1] = min(1.0, p_maxNorm() / (norm + 1e-6));
  }
}`,
  };
}
