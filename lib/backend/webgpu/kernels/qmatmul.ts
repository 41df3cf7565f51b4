/**
 * WGSL kernels over a packed (quantized) frozen weight W [N, K]: de-quantize, and the fused
 * products `x · Wᵀ` and `x · W` that de-quantize W as they read it (twins of
 * `lib/quant/qmatmul_cpu.ts`; the packed layout is described in `lib/quant/formats/format.ts`
 * and each format's file).
 *
 * The kernels are format-agnostic: each format (`lib/quant/formats/`) hands over its WGSL as data
 * in a {@link QWeightSpec}, with `wval(i, n)`, element i = n·K + k of W, and `wload8(i0, n)`, the
 * eight elements i0 … i0+7 of one row when i0 is a multiple of 8 (one u32 word of 4-bit codes,
 * two of int8, four of f16). Both do the f32 steps of the format's CPU decoder in the same order.
 * The code table, the block sizes and the transposition are baked into the source, and into the
 * pipeline key.
 *
 * - Training batches use the f32 matmul's tiled variants (`kernels/matmul.ts` with a
 *   `QWeightSpec`): each k-slice of op(W) is de-quantized once into workgroup memory (`wval`, or
 *   `wload4` for four weights of a row at once) and used by every row of the tile.
 * - `qMatvecKernel`: few rows (≤ {@link MV_ROWS} per dispatch), for generation. Without
 *   transposition a workgroup owns 8 rows of W, 32 threads per row stride over K eight weights at
 *   a time and reduce in workgroup memory. Transposed (y = x · W, the backward dX = dY · W), a
 *   workgroup owns 256 columns of W, eight slices of threads split the rows, then reduce.
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { paramLayout, type ParamsOf, prelude } from "./common.ts";

/**
 * What a kernel bakes in about the weight, handed over by the weight's format (built in
 * `lib/quant/qmatmul_webgpu.ts` from `lib/quant/formats/`): the kernels never name a format.
 */
export interface QWeightSpec {
  /** The part of a pipeline key that names the format, e.g. `nf4:b64:dq256`. */
  readonly key: string;
  /** Number of storage buffers the weight binds (data, then absmax or dq codes + scales + map). */
  readonly bindings: number;
  /**
   * Whether the kernel must call `wsetup(t)` on every thread, then `workgroupBarrier()`, before
   * decoding (the code table is in workgroup memory).
   */
  readonly setup: boolean;
  /**
   * The format's WGSL: bindings `b0`… and the decoders `wval(i, n)`, `wload8(i0, n)` and
   * `wload4(i0, n)` (`QuantFormatSpec.wgsl` in `lib/quant/formats/format.ts`).
   */
  decodeWgsl(b0: number): string;
}

/**
 * A plain f32 W [N, K] (one binding) read through the decoder interface: the f32 matmul's few-row
 * products run {@link qMatvecKernel} with it. The f32 storage format (`lib/quant/formats/float.ts`)
 * uses the same WGSL.
 */
export const F32_WEIGHT: QWeightSpec = {
  key: "f32w",
  bindings: 1,
  setup: false,
  decodeWgsl: (b0) =>
    `@group(0) @binding(${b0}) var<storage, read> QW: array<u32>;
fn wsetup(t: u32) {}
fn wval(i: u32, n: u32) -> f32 { return bitcast<f32>(QW[i]); }
fn wload8(i0: u32, n: u32) -> array<f32, 8> {
  let a = bitcast<vec4<f32>>(vec4(QW[i0], QW[i0 + 1u], QW[i0 + 2u], QW[i0 + 3u]));
  let b = bitcast<vec4<f32>>(vec4(QW[i0 + 4u], QW[i0 + 5u], QW[i0 + 6u], QW[i0 + 7u]));
  return array<f32, 8>(a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w);
}
fn wload4(i0: u32, n: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4(QW[i0], QW[i0 + 1u], QW[i0 + 2u], QW[i0 + 3u]));
}`,
};

/**
 * The WGSL that fills the weight's workgroup tables, by thread `t` (every thread of the workgroup
 * runs it, in uniform control flow), when the spec keeps any; else nothing.
 */
export function setupWgsl(s: QWeightSpec, t: string): string {
  return s.setup ? `  wsetup(${t});\n  workgroupBarrier();` : "";
}

/** x rows handled by one matrix-vector dispatch. */
export const MV_ROWS = 4;
/** W rows per workgroup of the untransposed matrix-vector kernel. */
export const MV_WG_ROWS = 8;
/** W columns per workgroup of the transposed matrix-vector kernel. */
export const MVT_WG_COLS = 256;

/** Parameters of {@link qDequantKernel}: the element count N·K and the row length K. */
export const Q_DEQUANT_PARAMS = paramLayout({ numel: "u32", K: "u32" });
/** Launcher of {@link qDequantKernel}. Dispatch: `groups1d(numel)`. */
export function qDequantParams(p: ParamsOf<typeof Q_DEQUANT_PARAMS>): number[] {
  return Q_DEQUANT_PARAMS.pack(p);
}

/**
 * W [N, K] de-quantized to f32. params: {@link Q_DEQUANT_PARAMS}. Bindings: out, then the
 * weight's. Dispatch: `groups1d(numel)`.
 */
export function qDequantKernel(s: QWeightSpec): Kernel {
  return {
    key: `qdequant:${s.key}`,
    code: `${prelude(Q_DEQUANT_PARAMS)}
@group(0) @binding(1) var<storage, read_write> O: array<f32>;
${s.decodeWgsl(2)}
@compute @workgroup_size(256)
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
${setupWgsl(s, "t")}
  let i = gidx(gid, nwg);
  if (i >= p_numel()) { return; }
  O[i] = wval(i, i / p_K());
}`,
  };
}

// The eight weights of W row n at columns k0 … k0+7 (flat i0 = n·K + k0) as two vec4; zeros
// past column K. When K is a multiple of 8 every such group is one aligned wload8.
const LOAD8 = /* wgsl */ `
fn load8(i0: u32, n: u32, k0: u32, K: u32) -> array<vec4<f32>, 2> {
  var o: array<f32, 8>;
  if ((K & 7u) == 0u) {
    o = wload8(i0, n);
  } else {
    for (var j = 0u; j < 8u; j++) {
      if (k0 + j < K) { o[j] = wval(i0 + j, n); } else { o[j] = 0.0; }
    }
  }
  return array<vec4<f32>, 2>(vec4(o[0], o[1], o[2], o[3]), vec4(o[4], o[5], o[6], o[7]));
}`;

// The WGSL of `f(m)` for m = 0 … n-1 (x rows are unrolled so accumulators stay registers).
function rows(f: (m: number) => string, n = MV_ROWS): string {
  return Array.from({ length: n }, (_, m) => f(m)).join("\n");
}

/**
 * Parameters of {@link qMatvecKernel}: the x rows of this dispatch (≤ {@link MV_ROWS}), the
 * outputs and inner length of a row, W's row length K, whether the bias is added, and the first
 * x row.
 */
export const Q_MATVEC_PARAMS = paramLayout({
  rows: "u32",
  outputs: "u32",
  inner: "u32",
  K: "u32",
  hasBias: "bool",
  x0: "u32",
});
/** Launcher of {@link qMatvecKernel}. Dispatch: {@link qMatvecGroups}. */
export function qMatvecParams(p: ParamsOf<typeof Q_MATVEC_PARAMS>): number[] {
  return Q_MATVEC_PARAMS.pack(p);
}
/**
 * Dispatch of {@link qMatvecKernel} over W [N, K]: [⌈N / 8⌉, 1, 1] untransposed,
 * [⌈K / 256⌉, 1, 1] with `transW`.
 */
export function qMatvecGroups(N: number, K: number, transW: boolean): [number, number, number] {
  return [transW ? Math.ceil(K / MVT_WG_COLS) : Math.ceil(N / MV_WG_ROWS), 1, 1];
}

/**
 * Matrix-vector `y = x · op(W) (+ bias)` for up to {@link MV_ROWS} rows of x at a time.
 * params: {@link Q_MATVEC_PARAMS}. Bindings: x [*, inner], bias [outputs], y [*, outputs], then
 * the weight's. Dispatch: {@link qMatvecGroups}. Untransposed, the kernel is built for exactly
 * `xRows` x rows (the dispatch's `rows` must equal it) and, with `aligned`, for K a multiple of 8
 * (whole words, no tail); the transposed kernel takes any `rows` ≤ {@link MV_ROWS}.
 */
export function qMatvecKernel(
  s: QWeightSpec,
  transW: boolean,
  xRows: number = MV_ROWS,
  aligned = false,
): Kernel {
  const head = `${prelude(Q_MATVEC_PARAMS)}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${s.decodeWgsl(4)}
${LOAD8}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let M = p_rows();
  let NO = p_outputs();
  let KI = p_inner();
  let WK = p_K();
  let hasBias = p_hasBias();
  let x0 = p_x0();
${setupWgsl(s, "t")}`;
  if (!transW) {
    // 8 rows of W per workgroup, 32 threads per row, each taking groups of 8 columns in turn;
    // a<m> is x row m's partial dot product. The x row count R and whether K is a multiple of 8
    // are baked in, so the loop has no branch per row or per group.
    const R = Math.max(1, Math.min(MV_ROWS, xRows));
    const xs = (m: number) => `(x0 + ${m}u) * KI + k0`;
    const step = aligned
      ? `      let wa = wload4(n * WK + k0, n);
      let wb = wload4(n * WK + k0 + 4u, n);
${rows((m) => `      a${m} += dot(x4(${xs(m)}), wa) + dot(x4(${xs(m)} + 4u), wb);`, R)}`
      : `      let w = load8(n * WK + k0, n, k0, WK);
      let cnt = min(8u, KI - k0);
${rows((m) => `      a${m} += xdot(${xs(m)}, cnt, w);`, R)}`;
    return {
      key: `qmatvec:${s.key}:t0:r${R}${aligned ? "a" : ""}`,
      code: `${head}
  let lane = t % 32u;
  let n = wg.x * ${MV_WG_ROWS}u + t / 32u;
${rows((m) => `  var a${m} = 0.0;`, R)}
  if (n < NO) {
    for (var k0 = lane * 8u; k0 < KI; k0 += 256u) {
${step}
    }
  }
${rows((m) => `  red[${m}u * 256u + t] = a${m};`, R)}
  workgroupBarrier();
  for (var h = 16u; h > 0u; h >>= 1u) {
    if (lane < h) {
${rows((m) => `      red[${m}u * 256u + t] += red[${m}u * 256u + t + h];`, R)}
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < NO) {
    var b = 0.0;
    if (hasBias) { b = Bias[n]; }
${rows((m) => `    O[(x0 + ${m}u) * NO + n] = red[${m}u * 256u + t] + b;`, R)}
  }
}
var<workgroup> red: array<f32, ${R * 256}>; // partial sums of each thread, x row by x row
fn x4(b: u32) -> vec4<f32> { return vec4(X[b], X[b + 1u], X[b + 2u], X[b + 3u]); }
// Σ_j x[b + j] · w[j] over j < cnt (x past the row is never read).
fn xdot(b: u32, cnt: u32, w: array<vec4<f32>, 2>) -> f32 {
  if (cnt == 8u) { return dot(x4(b), w[0]) + dot(x4(b + 4u), w[1]); }
  var s = 0.0;
  for (var j = 0u; j < cnt; j++) { s = fma(X[b + j], w[j / 4u][j % 4u], s); }
  return s;
}`,
    };
  }
  // 256 columns of W per workgroup: thread (slice sl, lane c) owns columns k0 … k0+7 and the W
  // rows sl, sl+8, …; the eight slices are summed in workgroup memory, one x row at a time.
  return {
    key: `qmatvec:${s.key}:t1`,
    code: `${head}
  let c = t % 32u;
  let sl = t / 32u;
  let k0 = wg.x * ${MVT_WG_COLS}u + c * 8u;
${rows((m) => `  var a${m}: array<vec4<f32>, 2>; // x row ${m}: columns k0 … k0+7`)}
  if (k0 < NO) {
    for (var n = sl; n < KI; n += 8u) {
      let w = load8(n * WK + k0, n, k0, WK);
${
      rows((m) =>
        `      if (${m}u < M) {
        let xv = vec4(X[(x0 + ${m}u) * KI + n]);
        a${m}[0] = fma(xv, w[0], a${m}[0]);
        a${m}[1] = fma(xv, w[1], a${m}[1]);
      }`
      )
    }
    }
  }
  let col = wg.x * ${MVT_WG_COLS}u + t; // the column this thread writes (lane t / 8, j = t % 8)
  var b = 0.0;
  if (hasBias && col < NO) { b = Bias[col]; }
${
      rows((m) =>
        `  red[sl * 64u + c * 2u] = a${m}[0];
  red[sl * 64u + c * 2u + 1u] = a${m}[1];
  workgroupBarrier();
  if (${m}u < M && col < NO) {
    var v = 0.0;
    for (var q = 0u; q < 8u; q++) { v += red[q * 64u + t / 4u][t % 4u]; }
    O[(x0 + ${m}u) * NO + col] = v + b;
  }
  workgroupBarrier();`
      )
    }
}
var<workgroup> red: array<vec4<f32>, 512>; // [8 slices][32 lanes][2]: columns as vec4`,
  };
}
