/**
 * WGSL fused causal self-attention (FlashAttention-style): twins of `attentionForwardCpu` and
 * `attentionBackwardCpu` in `lib/backend/cpu/attention.ts`.
 *
 * The composed attention (permute q, k, v into heads, q·kᵀ, scale, causal softmax, ·v, permute
 * back, and the same again backwards) costs about a dozen dispatches per layer and stores the
 * [B, nh, T, T] probabilities. These kernels read q, k, v straight out of their [B, T, ·] rows
 * (a packed [B, T, 3C] c_attn output works: offsets 0, C, 2C with row stride 3C), keep an online
 * softmax per query row, and save only the row's log-sum-exp for the backward pass:
 *
 * - forward (1 dispatch): one thread per query row i holds q_i and its output accumulator in
 *   registers; key/value rows are staged in workgroup memory in tiles of `BK`; scores are taken
 *   a tile at a time, then the running max m, sum l and output o are rescaled once per tile.
 *   Writes y [B, T, C] and lse [B, nh, T] = m + log l.
 * - backward (2 dispatches, FlashAttention-2's split, no atomics): `dq` — one thread per query
 *   row, writes D_i = dy_i · y_i and dq_i = scale · Σ_j p_ij (dy_i · v_j − D_i) k_j; then `dkv` —
 *   one thread per key row j, dk_j = scale · Σ_i ds_ij q_i and dv_j = Σ_i p_ij dy_i, staging
 *   query rows (q, dy, lse, D) in tiles. Both write into one [B, T, 3C] gradient buffer (dq in
 *   columns [0, C), dk in [C, 2C), dv in [2C, 3C)).
 *
 * Workgroup memory stays within WebGPU's default 16 KiB for head widths up to 256.
 *
 * @module
 */

import type { AttentionParams } from "../../backend.ts";
import type { Kernel } from "../engine.ts";
import { paramLayout, type ParamsOf, prelude } from "./common.ts";

/** Query (or key) rows per workgroup: one thread each. */
export const ATT_ROWS = 64;
/** Largest head width the fused kernels take (registers hold several rows of this width). */
export const ATT_MAX_HD = 256;

/**
 * Parameters of every fused attention kernel (these and the tiled ones of `attention_tiled.ts`),
 * named as in `AttentionParams`: batch, sequence length, heads, the element offsets of q, k and v,
 * their row stride, and the score scale.
 */
export const ATTENTION_PARAMS = paramLayout({
  B: "u32",
  T: "u32",
  nHead: "u32",
  qOff: "u32",
  kOff: "u32",
  vOff: "u32",
  rowStride: "u32",
  scale: "f32",
});
/** Launcher of the fused attention kernels (an `AttentionParams` will do). */
export function attentionParams(p: ParamsOf<typeof ATTENTION_PARAMS>): number[] {
  return ATTENTION_PARAMS.pack(p);
}
/**
 * Dispatch of a fused attention kernel whose workgroup owns `rows` query (or key) rows:
 * [⌈T / rows⌉, B·nHead, 1] ({@link ATT_ROWS} for the row kernels, the tile's rows for the tiled
 * ones).
 */
export function attentionGroups(
  p: Pick<AttentionParams, "B" | "T" | "nHead">,
  rows: number,
): [number, number, number] {
  return [Math.ceil(p.T / rows), p.B * p.nHead, 1];
}

/** Rows per staged tile for head width `hd`: 2 · rows · hd floats fit in 8 KiB… 16 KiB. */
export function attTile(hd: number): number {
  return Math.max(1, Math.min(32, Math.floor(1024 / hd)));
}

// The bindings of each kernel, shared with the tiled kernels of attention_tiled.ts: the backend
// hands both families the same buffers.
/** Forward: Q, K, V (read-only, may be one buffer), Y [B, T, nh·hd], L [B, nh, T]. */
export const FWD_BINDINGS: string = /* wgsl */ `
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
@group(0) @binding(5) var<storage, read_write> L: array<f32>;`;
/** Backward dq: Q, K, V, Y, DY (read-only), LSE, DQKV [B, T, 3C], Dv [B, nh, T]. */
export const BWD_Q_BINDINGS: string = /* wgsl */ `
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> Y: array<f32>;
@group(0) @binding(5) var<storage, read> DY: array<f32>;
@group(0) @binding(6) var<storage, read> LSE: array<f32>;
@group(0) @binding(7) var<storage, read_write> DQKV: array<f32>;
@group(0) @binding(8) var<storage, read_write> Dv: array<f32>;`;
/** Backward dk/dv: Q, K, V, DY, LSE, Dv (read-only), DQKV [B, T, 3C]. */
export const BWD_KV_BINDINGS: string = /* wgsl */ `
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> DY: array<f32>;
@group(0) @binding(5) var<storage, read> LSE: array<f32>;
@group(0) @binding(6) var<storage, read> Dv: array<f32>;
@group(0) @binding(7) var<storage, read_write> DQKV: array<f32>;`;

// Stages key/value rows k0 … k0+BK-1 of head h into Ks / Vs (zeros past T); every thread calls it.
const STAGE_KV = /* wgsl */ `
fn stageKV(k0: u32, b: u32, h: u32, T: u32, t: u32) {
  for (var e = t; e < BK * HD; e += R) {
    let j = k0 + e / HD;
    var kv = 0.0;
    var vv = 0.0;
    if (j < T) {
      let base = rowBase(b, j, T, h) + e % HD;
      kv = K[p_kOff() + base];
      vv = V[p_vOff() + base];
    }
    Ks[e] = kv;
    Vs[e] = vv;
  }
}`;

// params (all kernels): ATTENTION_PARAMS
const HEAD = (hd: number) =>
  `${prelude(ATTENTION_PARAMS)}
const HD: u32 = ${hd}u;
const R: u32 = ${ATT_ROWS}u;
const BK: u32 = ${attTile(hd)}u;
fn rowBase(b: u32, t: u32, T: u32, h: u32) -> u32 { return (b * T + t) * p_rowStride() + h * HD; }
`;

/**
 * Forward. Bindings: Q, K, V (read-only, may be one buffer), Y [B, T, nh·hd], L [B, nh, T].
 * params: {@link ATTENTION_PARAMS}. Dispatch: {@link attentionGroups}(p, ATT_ROWS).
 */
export function attentionForwardKernel(hd: number): Kernel {
  return {
    key: `attn_fwd:${hd}`,
    code: `${HEAD(hd)}
${FWD_BINDINGS}
var<workgroup> Ks: array<f32, ${attTile(hd) * hd}>; // Ks[jj * HD + d]
var<workgroup> Vs: array<f32, ${attTile(hd) * hd}>;
${STAGE_KV}

@compute @workgroup_size(${ATT_ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let T = p_T();
  let nh = p_nHead();
  let sc = p_scale();
  let b = wg.y / nh;
  let h = wg.y % nh;
  let i = wg.x * R + lid.x; // this thread's query row
  let valid = i < T;
  var q: array<f32, HD>;
  var o: array<f32, HD>;
  if (valid) {
    let qb = p_qOff() + rowBase(b, i, T, h);
    for (var d = 0u; d < HD; d++) { q[d] = Q[qb + d] * sc; o[d] = 0.0; }
  }
  var m: f32 = -1e30; // finite sentinel: exp(m - mb) underflows to 0 on the first tile
  var l: f32 = 0.0;
  let kEnd = min(T, wg.x * R + R); // keys any row of this block may see
  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    stageKV(k0, b, h, T, lid.x);
    workgroupBarrier();
    if (valid && k0 <= i) {
      let n = min(BK, i + 1u - k0); // keys of this tile at or before i
      var s: array<f32, BK>;
      var mb = m;
      for (var jj = 0u; jj < n; jj++) {
        var acc = 0.0;
        for (var d = 0u; d < HD; d++) { acc = fma(q[d], Ks[jj * HD + d], acc); }
        s[jj] = acc;
        mb = max(mb, acc);
      }
      let corr = exp(m - mb);
      l *= corr;
      for (var d = 0u; d < HD; d++) { o[d] *= corr; }
      for (var jj = 0u; jj < n; jj++) {
        let p = exp(s[jj] - mb);
        l += p;
        for (var d = 0u; d < HD; d++) { o[d] = fma(p, Vs[jj * HD + d], o[d]); }
      }
      m = mb;
    }
    workgroupBarrier();
  }
  if (valid) {
    let C = nh * HD;
    let yb = (b * T + i) * C + h * HD;
    for (var d = 0u; d < HD; d++) { Y[yb + d] = o[d] / l; }
    L[wg.y * T + i] = m + log(l);
  }
}`,
  };
}

/**
 * Backward, part 1 (run first). Bindings: Q, K, V, Y, DY (read-only), LSE, DQKV (dq written into
 * columns [0, C) of the [B, T, 3C] gradient), Dv (D_i written, [B, nh, T]).
 * params: {@link ATTENTION_PARAMS}. Dispatch: {@link attentionGroups}(p, ATT_ROWS).
 */
export function attentionBackwardQKernel(hd: number): Kernel {
  return {
    key: `attn_bwd_q:${hd}`,
    code: `${HEAD(hd)}
${BWD_Q_BINDINGS}
var<workgroup> Ks: array<f32, ${attTile(hd) * hd}>;
var<workgroup> Vs: array<f32, ${attTile(hd) * hd}>;
${STAGE_KV}

@compute @workgroup_size(${ATT_ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let T = p_T();
  let nh = p_nHead();
  let sc = p_scale();
  let C = nh * HD;
  let b = wg.y / nh;
  let h = wg.y % nh;
  let i = wg.x * R + lid.x;
  let valid = i < T;
  var q: array<f32, HD>;
  var dy: array<f32, HD>;
  var dq: array<f32, HD>;
  var Di: f32 = 0.0;
  var lse: f32 = 0.0;
  if (valid) {
    let qb = p_qOff() + rowBase(b, i, T, h);
    let yb = (b * T + i) * C + h * HD;
    for (var d = 0u; d < HD; d++) {
      q[d] = Q[qb + d] * sc;
      dy[d] = DY[yb + d];
      dq[d] = 0.0;
      Di = fma(dy[d], Y[yb + d], Di);
    }
    lse = LSE[wg.y * T + i];
    Dv[wg.y * T + i] = Di;
  }
  let kEnd = min(T, wg.x * R + R);
  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    stageKV(k0, b, h, T, lid.x);
    workgroupBarrier();
    if (valid && k0 <= i) {
      let n = min(BK, i + 1u - k0);
      for (var jj = 0u; jj < n; jj++) {
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < HD; d++) {
          s = fma(q[d], Ks[jj * HD + d], s);
          dp = fma(dy[d], Vs[jj * HD + d], dp);
        }
        let ds = exp(s - lse) * (dp - Di);
        for (var d = 0u; d < HD; d++) { dq[d] = fma(ds, Ks[jj * HD + d], dq[d]); }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let ob = (b * T + i) * 3u * C + h * HD;
    for (var d = 0u; d < HD; d++) { DQKV[ob + d] = dq[d] * sc; }
  }
}`,
  };
}

/**
 * Backward, part 2 (after part 1, which wrote D). Bindings: Q, K, V, DY, LSE, Dv (read-only),
 * DQKV (dk into columns [C, 2C), dv into [2C, 3C)). params: {@link ATTENTION_PARAMS}.
 * Dispatch: {@link attentionGroups}(p, ATT_ROWS).
 */
export function attentionBackwardKVKernel(hd: number): Kernel {
  return {
    key: `attn_bwd_kv:${hd}`,
    code: `${HEAD(hd)}
${BWD_KV_BINDINGS}
var<workgroup> Qs: array<f32, ${attTile(hd) * hd}>; // scaled q rows
var<workgroup> DYs: array<f32, ${attTile(hd) * hd}>;
var<workgroup> Ls: array<f32, ${attTile(hd)}>;
var<workgroup> Ds: array<f32, ${attTile(hd)}>;

@compute @workgroup_size(${ATT_ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let T = p_T();
  let nh = p_nHead();
  let sc = p_scale();
  let C = nh * HD;
  let b = wg.y / nh;
  let h = wg.y % nh;
  let j = wg.x * R + lid.x; // this thread's key row
  let valid = j < T;
  var k: array<f32, HD>;
  var v: array<f32, HD>;
  var dk: array<f32, HD>;
  var dv: array<f32, HD>;
  if (valid) {
    let base = rowBase(b, j, T, h);
    for (var d = 0u; d < HD; d++) {
      k[d] = K[p_kOff() + base + d];
      v[d] = V[p_vOff() + base + d];
      dk[d] = 0.0;
      dv[d] = 0.0;
    }
  }
  // Queries before this block's first key see none of its keys.
  for (var i0 = wg.x * R; i0 < T; i0 += BK) {
    for (var e = lid.x; e < BK * HD; e += R) {
      let i = i0 + e / HD;
      var qv = 0.0;
      var dyv = 0.0;
      if (i < T) {
        qv = Q[p_qOff() + rowBase(b, i, T, h) + e % HD] * sc;
        dyv = DY[(b * T + i) * C + h * HD + e % HD];
      }
      Qs[e] = qv;
      DYs[e] = dyv;
    }
    for (var e = lid.x; e < BK; e += R) {
      let i = i0 + e;
      var lv = 0.0;
      var dv_ = 0.0;
      if (i < T) { lv = LSE[wg.y * T + i]; dv_ = Dv[wg.y * T + i]; }
      Ls[e] = lv;
      Ds[e] = dv_;
    }
    workgroupBarrier();
    if (valid && i0 + BK > j) {
      for (var ii = 0u; ii < BK; ii++) {
        let i = i0 + ii;
        if (i < j || i >= T) { continue; }
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < HD; d++) {
          s = fma(Qs[ii * HD + d], k[d], s);
          dp = fma(DYs[ii * HD + d], v[d], dp);
        }
        let p = exp(s - Ls[ii]);
        let ds = p * (dp - Ds[ii]);
        for (var d = 0u; d < HD; d++) {
          dv[d] = fma(p, DYs[ii * HD + d], dv[d]);
          dk[d] = fma(ds, Qs[ii * HD + d], dk[d]);
        }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let ob = (b * T + j) * 3u * C + h * HD;
    for (var d = 0u; d < HD; d++) {
      DQKV[ob + C + d] = dk[d];
      DQKV[ob + 2u * C + d] = dv[d];
    }
  }
}`,
  };
}
