/**
 * WGSL kernels over a packed (quantized) frozen weight W [N, K]: de-quantize, and the fused
 * products `x · Wᵀ` and `x · W` that de-quantize W as they read it (twins of
 * `lib/quant/qmatmul_cpu.ts`; the packed layout is described in `lib/quant/packed.ts`).
 *
 * Each format contributes two WGSL functions: `wval(i, n)`, element i = n·K + k of W, and
 * `wload8(i0, n)`, the eight elements i0 … i0+7 of one row when i0 is a multiple of 8 (one u32
 * word of 4-bit codes, two of int8, four of f16). Both do the f32 steps of the CPU decoder in the
 * same order. The code table, the block sizes and the transposition are baked into the source,
 * and into the pipeline key.
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
import { MAIN_1D, PRELUDE } from "./common.ts";

/** What a kernel bakes in about the weight. */
export interface QWeightSpec {
  /** Storage format. */
  format: "f32" | "f16" | "bf16" | "int8" | "int8-row" | "nf4" | "fp4" | "int4";
  /** 4-bit formats: weights per absmax block (a multiple of 8); else 0. */
  blockSize: number;
  /** Double quantization (bitsandbytes'): constants per nested block; 0 without. */
  dqBlockSize: number;
  /** 4-bit formats: the f32 code table [16]; else null. */
  table: Float32Array | null;
}

/** x rows handled by one matrix-vector dispatch. */
export const MV_ROWS = 4;
/** W rows per workgroup of the untransposed matrix-vector kernel. */
export const MV_WG_ROWS = 8;
/** W columns per workgroup of the transposed matrix-vector kernel. */
export const MVT_WG_COLS = 256;

/** Number of storage buffers the weight binds (data, then absmax or dq codes + scales + map). */
export function weightBindings(s: QWeightSpec): number {
  if (s.dqBlockSize > 0) return 4;
  return s.format === "f32" || s.format === "f16" || s.format === "bf16" ? 1 : 2;
}

/** The part of a pipeline key that names a weight format. */
export function specKey(s: QWeightSpec): string {
  return `${s.format}:b${s.blockSize}:dq${s.dqBlockSize}`;
}

// An f32 as a WGSL literal that parses back to the same f32 (shortest round-trip decimal).
function lit(x: number): string {
  const s = String(Math.fround(x));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** Bindings `b0`… and the `wval` / `wload8` decoders of a weight format. */
export function decodeWgsl(s: QWeightSpec, b0: number): string {
  const W = `@group(0) @binding(${b0}) var<storage, read> QW: array<u32>;`;
  const S = `@group(0) @binding(${b0 + 1}) var<storage, read> QS: array<f32>;`;
  switch (s.format) {
    case "f32":
      return `${W}
fn wval(i: u32, n: u32) -> f32 { return bitcast<f32>(QW[i]); }
fn wload8(i0: u32, n: u32) -> array<f32, 8> {
  var o: array<f32, 8>;
  for (var j = 0u; j < 8u; j++) { o[j] = bitcast<f32>(QW[i0 + j]); }
  return o;
}
fn wload4(i0: u32, n: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4(QW[i0], QW[i0 + 1u], QW[i0 + 2u], QW[i0 + 3u]));
}`;
    case "f16":
    case "bf16": {
      // f16 -> f32 by hand (exact, subnormals included), so shader-f16 is not needed.
      const conv = s.format === "bf16" ? `return bitcast<f32>(h << 16u);` : `
  let sgn = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 31u;
  let m = h & 1023u;
  if (e == 0u) { // ±0 or subnormal: m · 2^-24, exact in f32
    let v = f32(m) * 5.9604644775390625e-8;
    return select(v, -v, sgn != 0u);
  }
  if (e == 31u) { return bitcast<f32>(sgn | 0x7f800000u | (m << 13u)); }
  return bitcast<f32>(sgn | ((e + 112u) << 23u) | (m << 13u));`;
      return `${W}
fn h2f(h: u32) -> f32 {${conv}
}
fn wval(i: u32, n: u32) -> f32 { return h2f((QW[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }
fn wload8(i0: u32, n: u32) -> array<f32, 8> {
  var o: array<f32, 8>;
  for (var j = 0u; j < 4u; j++) {
    let w = QW[(i0 >> 1u) + j];
    o[2u * j] = h2f(w & 0xffffu);
    o[2u * j + 1u] = h2f(w >> 16u);
  }
  return o;
}
fn wload4(i0: u32, n: u32) -> vec4<f32> {
  let w0 = QW[i0 >> 1u];
  let w1 = QW[(i0 >> 1u) + 1u];
  return vec4(h2f(w0 & 0xffffu), h2f(w0 >> 16u), h2f(w1 & 0xffffu), h2f(w1 >> 16u));
}`;
    }
    case "int8":
    case "int8-row": {
      const a = s.format === "int8-row" ? "QS[n]" : "QS[0]";
      return `${W}
${S}
fn sbyte(w: u32, j: u32) -> f32 { return f32(bitcast<i32>(w << (24u - 8u * j)) >> 24u); }
fn wval(i: u32, n: u32) -> f32 { return sbyte(QW[i >> 2u], i & 3u) * ${a} / 127.0; }
fn wload8(i0: u32, n: u32) -> array<f32, 8> {
  var o: array<f32, 8>;
  let a = ${a};
  for (var j = 0u; j < 8u; j++) { o[j] = sbyte(QW[(i0 >> 2u) + j / 4u], j & 3u) * a / 127.0; }
  return o;
}
fn wload4(i0: u32, n: u32) -> vec4<f32> {
  let w = QW[i0 >> 2u];
  let a = ${a};
  return vec4(sbyte(w, 0u) * a / 127.0, sbyte(w, 1u) * a / 127.0, sbyte(w, 2u) * a / 127.0,
              sbyte(w, 3u) * a / 127.0);
}`;
    }
    case "nf4":
    case "fp4":
    case "int4": {
      const table = Array.from(s.table!, lit).join(", ");
      const amax = s.dqBlockSize > 0
        ? `@group(0) @binding(${b0 + 1}) var<storage, read> QC: array<u32>;
@group(0) @binding(${b0 + 2}) var<storage, read> QD: array<f32>; // [offset, nested absmax…]
@group(0) @binding(${b0 + 3}) var<storage, read> QM: array<f32>; // the 8-bit map [256]
fn amax(b: u32) -> f32 {
  let q = (QC[b >> 2u] >> (8u * (b & 3u))) & 255u;
  return QM[q] * QD[1u + b / ${s.dqBlockSize}u] + QD[0];
}`
        : `${S}
fn amax(b: u32) -> f32 { return QS[b]; }`;
      return `${W}
${amax}
var<private> CODE: array<f32, 16> = array<f32, 16>(${table});
fn wval(i: u32, n: u32) -> f32 {
  return CODE[(QW[i >> 3u] >> ((i & 7u) * 4u)) & 15u] * amax(i / ${s.blockSize}u);
}
fn wload8(i0: u32, n: u32) -> array<f32, 8> {
  var o: array<f32, 8>;
  let w = QW[i0 >> 3u];
  let a = amax(i0 / ${s.blockSize}u);
  for (var j = 0u; j < 8u; j++) { o[j] = CODE[(w >> (4u * j)) & 15u] * a; }
  return o;
}
fn wload4(i0: u32, n: u32) -> vec4<f32> {
  let w = QW[i0 >> 3u] >> ((i0 & 7u) * 4u); // i0 is a multiple of 4: one half of a word
  let a = amax(i0 / ${s.blockSize}u);
  return vec4(CODE[w & 15u] * a, CODE[(w >> 4u) & 15u] * a, CODE[(w >> 8u) & 15u] * a,
              CODE[(w >> 12u) & 15u] * a);
}`;
    }
  }
}

/**
 * W [N, K] de-quantized to f32. params: numel, K. Bindings: out, then the weight's.
 * Dispatch: `groups1d(numel)`.
 */
export function qDequantKernel(s: QWeightSpec): Kernel {
  return {
    key: `qdequant:${specKey(s)}`,
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read_write> O: array<f32>;
${decodeWgsl(s, 2)}
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= pu(0u)) { return; }
  O[i] = wval(i, i / pu(1u));
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

// The WGSL of `f(m)` for m = 0 … MV_ROWS-1 (x rows are unrolled so accumulators stay registers).
function rows(f: (m: number) => string): string {
  return Array.from({ length: MV_ROWS }, (_, m) => f(m)).join("\n");
}

/**
 * Matrix-vector `y = x · op(W) (+ bias)` for up to {@link MV_ROWS} rows of x at a time.
 * params: rows (≤ MV_ROWS), outputs, inner, K, hasBias, first row x0.
 * Bindings: x [*, inner], bias [outputs], y [*, outputs], then the weight's.
 * Dispatch: [⌈N / 8⌉, 1, 1] untransposed, [⌈K / 256⌉, 1, 1] with `transW`.
 */
export function qMatvecKernel(s: QWeightSpec, transW: boolean): Kernel {
  const head = `${PRELUDE}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${decodeWgsl(s, 4)}
${LOAD8}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let M = pu(0u);
  let NO = pu(1u);
  let KI = pu(2u);
  let WK = pu(3u);
  let hasBias = pu(4u) == 1u;
  let x0 = pu(5u);`;
  if (!transW) {
    // 8 rows of W per workgroup, 32 threads per row, each taking groups of 8 columns in turn;
    // acc[m] is x row m's partial dot product.
    return {
      key: `qmatvec:${specKey(s)}:t0`,
      code: `${head}
  let lane = t % 32u;
  let n = wg.x * ${MV_WG_ROWS}u + t / 32u;
  var acc = vec${MV_ROWS}<f32>(0.0);
  if (n < NO) {
    for (var k0 = lane * 8u; k0 < KI; k0 += 256u) {
      let w = load8(n * WK + k0, n, k0, WK);
      let cnt = min(8u, KI - k0);
${rows((m) => `      if (${m}u < M) { acc[${m}] += xdot((x0 + ${m}u) * KI + k0, cnt, w); }`)}
    }
  }
  red[t] = acc;
  workgroupBarrier();
  for (var h = 16u; h > 0u; h >>= 1u) {
    if (lane < h) { red[t] += red[t + h]; }
    workgroupBarrier();
  }
  if (lane == 0u && n < NO) {
    var b = 0.0;
    if (hasBias) { b = Bias[n]; }
    let v = red[t];
${rows((m) => `    if (${m}u < M) { O[(x0 + ${m}u) * NO + n] = v[${m}] + b; }`)}
  }
}
var<workgroup> red: array<vec${MV_ROWS}<f32>, 256>; // partial sums of each thread
// Σ_j x[b + j] · w[j] over j < cnt (x past the row is never read).
fn xdot(b: u32, cnt: u32, w: array<vec4<f32>, 2>) -> f32 {
  if (cnt == 8u) {
    let xa = vec4(X[b], X[b + 1u], X[b + 2u], X[b + 3u]);
    let xb = vec4(X[b + 4u], X[b + 5u], X[b + 6u], X[b + 7u]);
    return dot(xa, w[0]) + dot(xb, w[1]);
  }
  var s = 0.0;
  for (var j = 0u; j < cnt; j++) { s = fma(X[b + j], w[j / 4u][j % 4u], s); }
  return s;
}`,
    };
  }
  // 256 columns of W per workgroup: thread (slice sl, lane c) owns columns k0 … k0+7 and the W
  // rows sl, sl+8, …; the eight slices are summed in workgroup memory, one x row at a time.
  return {
    key: `qmatvec:${specKey(s)}:t1`,
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
