/**
 * WGSL data movement: embedding gather, strided gather (permute / narrow / copy) and f32↔f16
 * casts. Twins of `embeddingCpu`, `stridedCpu` and the CPU backend's `cast`.
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { MAIN_1D, N_PARAMS, paramLayout, type ParamsOf, prelude } from "./common.ts";
import { MAX_RANK } from "./elementwise.ts";

/**
 * Parameters of the embedding backward kernels: n ids, V entries of C floats, the entries being
 * rows start … start + V - 1 of the table (start 0: the whole table; else a row chunk).
 */
export const EMBEDDING_PARAMS = paramLayout({ n: "u32", V: "u32", C: "u32", start: "u32" });
/** Launcher of the embedding backward kernels. */
export function embeddingParams(p: ParamsOf<typeof EMBEDDING_PARAMS>): number[] {
  return EMBEDDING_PARAMS.pack(p);
}

/**
 * Parameters of {@link embeddingKernel}: n ids, a table of V entries of C floats holding rows
 * start … start + V - 1 of a table of `total` rows (start 0, total V: the whole table).
 */
export const EMBEDDING_ROWS_PARAMS = paramLayout({
  n: "u32",
  V: "u32",
  C: "u32",
  start: "u32",
  total: "u32",
});
/** Launcher of {@link embeddingKernel}. Dispatch: `groups1d(n · C)`. */
export function embeddingRowsParams(p: ParamsOf<typeof EMBEDDING_ROWS_PARAMS>): number[] {
  return EMBEDDING_ROWS_PARAMS.pack(p);
}

/**
 * params: {@link EMBEDDING_ROWS_PARAMS}. Bindings: ids (i32), table, out. An id outside
 * [0, total) gives a NaN row, one of another chunk (outside [start, start + V)) a zero row.
 * Twin: `embeddingCpu`.
 */
export function embeddingKernel(): Kernel {
  return {
    key: "embedding",
    code: `${prelude(EMBEDDING_ROWS_PARAMS)}
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let n = p_n();
  let V = p_V();
  let C = p_C();
  if (i >= n * C) { return; }
  let id = I[i / C];
  if (id < 0 || u32(id) >= p_total()) { O[i] = nan(); return; }
  let r = u32(id) - p_start(); // wraps past V for ids below start
  if (r >= V) { O[i] = 0.0; return; }
  O[i] = W[r * C + i % C];
}`,
  };
}

/**
 * Parameters of {@link stridedKernel}: n outputs, the rank, the source offset, and the shape and
 * source strides (rank ≤ `MAX_RANK` entries each).
 */
export const STRIDED_PARAMS = paramLayout({
  n: "u32",
  rank: "u32",
  offset: "u32",
  shape: ["u32", MAX_RANK],
  strides: ["u32", MAX_RANK],
});
/** Launcher of {@link stridedKernel}. Dispatch: `groups1d(n)`. */
export function stridedParams(p: ParamsOf<typeof STRIDED_PARAMS>): number[] {
  return STRIDED_PARAMS.pack(p);
}

/** Strided gather of 32-bit words (f32 or i32) or f16 halves; params: {@link STRIDED_PARAMS}. */
export function stridedKernel(elem: "u32" | "f16"): Kernel {
  return {
    key: `strided:${elem}`,
    code: `${elem === "f16" ? "enable f16;" : ""}${prelude(STRIDED_PARAMS)}
@group(0) @binding(1) var<storage, read> A: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> O: array<${elem}>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  let rank = p_rank();
  var rem = i;
  var src = p_offset();
  for (var d = 0u; d < rank; d++) {
    let ax = rank - 1u - d;
    let n = p_shape(ax);
    src += (rem % n) * p_strides(ax);
    rem = rem / n;
  }
  O[i] = A[src];
}`,
  };
}

/**
 * Casts between f32 and f16 (round to nearest even on the way down). params: `N_PARAMS` (launcher
 * `nParams`). Dispatch: `groups1d(n)`.
 */
export function castKernel(from: "f32" | "f16", to: "f32" | "f16"): Kernel {
  return {
    key: `cast:${from}:${to}`,
    code: `enable f16;${prelude(N_PARAMS)}
@group(0) @binding(1) var<storage, read> A: array<${from}>;
@group(0) @binding(2) var<storage, read_write> O: array<${to}>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  O[i] = ${to}(A[i]);
}`,
  };
}
