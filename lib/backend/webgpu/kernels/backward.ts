/**
 * WGSL backward passes and optimizer steps (twins of `lib/backend/cpu/backward.ts`).
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { MAIN_1D, PRELUDE } from "./common.ts";
import { ROW_MAIN, ROW_MAX_SUMEXP, ROW_MEAN_RSTD } from "./rows.ts";

/**
 * LayerNorm backward, pass 1 (a workgroup per row, see `rows.ts`): dx, and each row's mean and
 * rstd into S. params: rows, cols, eps. Bindings: X, G (gamma), DY, DX, S [rows, 2].
 * Dispatch: `rowGroups(rows)`.
 */
export function layerNormBackwardRows(): Kernel {
  return {
    key: "layernorm_bwd_rows",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> DY: array<f32>;
@group(0) @binding(4) var<storage, read_write> DX: array<f32>;
@group(0) @binding(5) var<storage, read_write> S: array<f32>;
${ROW_MEAN_RSTD}
${ROW_MAIN} {
  let r = wg.y * nwg.x + wg.x;
  let lid = lidv.x;
  let rows = pu(0u);
  let cols = pu(1u);
  if (r >= rows) { return; }
  let o = r * cols;
  let st = rowMeanRstd(o, cols, pf(2u), lid);
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

/**
 * LayerNorm backward, pass 2 (one thread per column and chunk of rows): partial dgamma = Σ dy·xhat
 * and dbeta = Σ dy over rows [s·chunk, (s+1)·chunk) into DG[s, c], DB[s, c] (the final sums when
 * there is one chunk). params: rows, cols, chunk, chunks. Bindings: X, DY, S (stats), DG, DB.
 * Dispatch: groups1d(chunks · cols).
 */
export function layerNormBackwardCols(): Kernel {
  return {
    key: "layernorm_bwd_cols",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read_write> DG: array<f32>;
@group(0) @binding(5) var<storage, read_write> DB: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let rows = pu(0u);
  let cols = pu(1u);
  let chunk = pu(2u);
  if (i >= pu(3u) * cols) { return; }
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
 * Ids outside [0, V) are skipped. params (all): n, V, C.
 */
export function embeddingBackwardKernels(): Record<
  "zero" | "count" | "scan" | "scatter" | "gather",
  Kernel
> {
  return {
    // Bindings: CNT (rw). Dispatch: groups1d(V).
    zero: {
      key: "emb_zero",
      code: `${PRELUDE}
@group(0) @binding(1) var<storage, read_write> CNT: array<u32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i < pu(1u)) { CNT[i] = 0u; }
}`,
    },
    // Bindings: I, CNT (rw, atomic). Dispatch: groups1d(n).
    count: {
      key: "emb_count",
      code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read_write> CNT: array<atomic<u32>>;
${MAIN_1D} {
  let k = gidx(gid, nwg);
  if (k >= pu(0u)) { return; }
  let v = I[k];
  if (v >= 0 && u32(v) < pu(1u)) { atomicAdd(&CNT[u32(v)], 1u); }
}`,
    },
    // Bindings: CNT, OFF [V + 1] (rw). Dispatch: [1, 1, 1].
    scan: {
      key: "emb_scan",
      code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> CNT: array<u32>;
@group(0) @binding(2) var<storage, read_write> OFF: array<u32>;
var<workgroup> part: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let V = pu(1u);
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
      code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read> OFF: array<u32>;
@group(0) @binding(3) var<storage, read_write> POS: array<u32>;
${MAIN_1D} {
  let k = gidx(gid, nwg);
  if (k >= pu(0u)) { return; }
  let v = I[k];
  if (v < 0 || u32(v) >= pu(1u)) { return; }
  var rank = 0u;
  for (var j = 0u; j < k; j++) { if (I[j] == v) { rank++; } }
  POS[OFF[u32(v)] + rank] = k;
}`,
    },
    // Bindings: OFF, POS, DY, O [V, C] (rw). Dispatch: groups1d(V·C).
    gather: {
      key: "emb_gather",
      code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> OFF: array<u32>;
@group(0) @binding(2) var<storage, read> POS: array<u32>;
@group(0) @binding(3) var<storage, read> DY: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let V = pu(1u);
  let C = pu(2u);
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
 * Cross-entropy backward, a workgroup per row (see `rows.ts`). params: rows, V, ignore (1: rows
 * whose target is -100 get zeros). Bindings: L (logits), T (i32 targets), G [rows], O [rows, V].
 * Dispatch: `rowGroups(rows)`.
 */
export function crossEntropyBackwardKernel(): Kernel {
  return {
    key: "cross_entropy_bwd",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<i32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
${ROW_MAX_SUMEXP}
${ROW_MAIN} {
  let r = wg.y * nwg.x + wg.x;
  let lid = lidv.x;
  let rows = pu(0u);
  let V = pu(1u);
  if (r >= rows) { return; }
  let o = r * V;
  let ms = rowMaxSumExp(o, V, lid);
  let mx = ms.x;
  let sum = ms.y;
  let t = T[r];
  let g = G[r];
  let skip = pu(2u) != 0u && t == -100;
  for (var c = lid; c < V; c += WG) {
    let p = exp(L[o + c] - mx) / sum;
    O[o + c] = select((p - select(0.0, 1.0, i32(c) == t)) * g, 0.0, skip);
  }
}`,
  };
}

/** narrow's adjoint. params: outer, len, inner, full, start. Bindings: A, O. */
export function unnarrowKernel(): Kernel {
  return {
    key: "unnarrow",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let outer = pu(0u);
  let len = pu(1u);
  let inner = pu(2u);
  let full = pu(3u);
  let start = pu(4u);
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
 * AdamW in place. params: n, lr, beta1, beta2, eps, wd, bc1, bc2 (floats as bits), scaled,
 * 1-beta1, 1-beta2 (bits; computed in float64 on the host, not as 1.0 - b in f32).
 * Bindings: P (rw), G, M (rw), V (rw), S ([norm, factor]: G is multiplied by S[1] when scaled).
 */
export function adamwKernel(): Kernel {
  return {
    key: "adamw",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read_write> P: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> V: array<f32>;
@group(0) @binding(5) var<storage, read> S: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= pu(0u)) { return; }
  let lr = pf(1u);
  let b1 = pf(2u);
  let b2 = pf(3u);
  var g = G[i];
  if (pu(8u) == 1u) { g *= S[1]; }
  let m = b1 * M[i] + pf(9u) * g;
  let v = b2 * V[i] + pf(10u) * g * g;
  M[i] = m;
  V[i] = v;
  let pd = P[i] - lr * pf(5u) * P[i];
  P[i] = pd - lr * ((m / pf(6u)) / (sqrt(v / pf(7u)) + pf(4u)));
}`,
  };
}

/** Parameter words before the per-tensor offsets in {@link adamwManyKernel}. */
const MANY_HEAD = 9;
/** Most tensors one {@link adamwManyKernel} dispatch takes (its offsets and decays fill the 32 words). */
export const ADAMW_MANY_MAX = 11;

/**
 * AdamW on `k` tensors in one dispatch over their concatenated elements, with the arithmetic of
 * {@link adamwKernel} per element (bit-identical). params: lr, beta1, beta2, eps, bc1, bc2 (bits),
 * scaled, 1-beta1, 1-beta2 (bits), then k + 1 element offsets (the last is the total), then k weight decays (bits).
 * Bindings: S ([norm, factor]), then P, G, M, V of each tensor. Dispatch: groups1d(total).
 */
export function adamwManyKernel(k: number): Kernel {
  if (!(k >= 1 && k <= ADAMW_MANY_MAX)) throw new RangeError(`adamwMany: ${k} tensors`);
  const decl: string[] = [], body: string[] = [];
  for (let t = 0; t < k; t++) {
    const b = 2 + 4 * t;
    decl.push(
      `@group(0) @binding(${b}) var<storage, read_write> P${t}: array<f32>;`,
      `@group(0) @binding(${b + 1}) var<storage, read> G${t}: array<f32>;`,
      `@group(0) @binding(${b + 2}) var<storage, read_write> M${t}: array<f32>;`,
      `@group(0) @binding(${b + 3}) var<storage, read_write> V${t}: array<f32>;`,
    );
    body.push(`  ${t ? "else " : ""}if (i < pu(${MANY_HEAD + t + 1}u)) {
    let j = i - pu(${MANY_HEAD + t}u);
    var g = G${t}[j];
    if (scaled) { g *= S[1]; }
    let m = b1 * M${t}[j] + c1 * g;
    let v = b2 * V${t}[j] + c2 * g * g;
    M${t}[j] = m;
    V${t}[j] = v;
    let pd = P${t}[j] - lr * pf(${MANY_HEAD + k + 1 + t}u) * P${t}[j];
    P${t}[j] = pd - lr * ((m / pf(4u)) / (sqrt(v / pf(5u)) + pf(3u)));
  }`);
  }
  return {
    key: `adamw_many:${k}`,
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> S: array<f32>;
${decl.join("\n")}
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= pu(${MANY_HEAD + k}u)) { return; }
  let lr = pf(0u);
  let b1 = pf(1u);
  let b2 = pf(2u);
  let scaled = pu(6u) == 1u;
  let c1 = pf(7u);
  let c2 = pf(8u);
${body.join("\n")}
}`,
  };
}

/**
 * SGD with momentum in place. params: n, lr, momentum, wd, scaled. Bindings: P (rw), G, B (rw),
 * S (as in {@link adamwKernel}).
 */
export function sgdKernel(): Kernel {
  return {
    key: "sgd",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read_write> P: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> B: array<f32>;
@group(0) @binding(4) var<storage, read> S: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= pu(0u)) { return; }
  var g = G[i];
  if (pu(4u) == 1u) { g *= S[1]; }
  let b = pf(2u) * B[i] + g + pf(3u) * P[i];
  B[i] = b;
  P[i] = P[i] - pf(1u) * b;
}`,
  };
}

/**
 * Sum of squares of G (n elements) into partials: each of the NORM_PARTIALS workgroups
 * grid-strides over G and writes its tree-reduced sum to OUT[slot · NORM_PARTIALS + wg].
 * params: n, slot. Bindings: G, OUT (rw). Dispatch: [NORM_PARTIALS, 1, 1].
 */
export function sumSquaresKernel(): Kernel {
  return {
    key: "sumsq",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = pu(0u);
  var s = 0.0;
  for (var i = wg.x * 256u + lid.x; i < n; i += nwg.x * 256u) { s = fma(G[i], G[i], s); }
  red[lid.x] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid.x < w) { red[lid.x] += red[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { OUT[pu(1u) * nwg.x + wg.x] = red[0]; }
}`,
  };
}

/**
 * Global-norm clipping factor: sums `count` partials, writes OUT = [norm, min(1, maxNorm /
 * (norm + 1e-6))]. params: count, maxNorm (bits). Bindings: PART, OUT (rw). Dispatch: [1, 1, 1].
 */
export function clipFactorKernel(): Kernel {
  return {
    key: "clip_factor",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> PART: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var i = lid.x; i < pu(0u); i += 256u) { s += PART[i]; }
  red[lid.x] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid.x < w) { red[lid.x] += red[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    let norm = sqrt(red[0]);
    OUT[0] = norm;
    OUT[1] = min(1.0, pf(1u) / (norm + 1e-6));
  }
}`,
  };
}
