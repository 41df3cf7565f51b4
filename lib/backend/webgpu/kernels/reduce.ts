/**
 * WGSL reduction over the middle axis of an [outer, len, inner] view (twin of `reduceCpu`).
 * One thread per output element, accumulating in f32 in index order like the CPU twin. A long
 * axis with few outputs (a bias gradient: 768 sums of 8,192 rows) would leave a GPU nearly idle,
 * so the backend splits it: chunks of the axis into [outer, chunks, inner], then the chunks
 * (both passes are {@link reduceKernel}).
 *
 * @module
 */

import type { ReduceOp } from "../../backend.ts";
import type { Kernel } from "../engine.ts";
import { MAIN_1D, paramLayout, type ParamsOf, prelude } from "./common.ts";

/**
 * Parameters of {@link reduceKernel}: the [outer, len, inner] view, the chunk length and count,
 * and the divisor of a mean.
 */
export const REDUCE_PARAMS = paramLayout({
  outer: "u32",
  len: "u32",
  inner: "u32",
  chunk: "u32",
  chunks: "u32",
  div: "u32",
});
/** Launcher of {@link reduceKernel}. Dispatch: `groups1d(outer · chunks · inner)`. */
export function reduceParams(p: ParamsOf<typeof REDUCE_PARAMS>): number[] {
  return REDUCE_PARAMS.pack(p);
}

/**
 * out[o, s, j] = reduce of a[o, l, j] over l in [s·chunk, min(len, (s+1)·chunk)); a mean divides
 * by `div` (the original axis length). One pass: chunk = len, chunks = 1. Two passes: `sum` (or
 * `max`) into [outer, chunks, inner], then the op over the chunks with chunk = chunks.
 * params: {@link REDUCE_PARAMS}. Dispatch: groups1d(outer · chunks · inner).
 */
export function reduceKernel(op: ReduceOp): Kernel {
  const init = op === "max" ? "neg_inf()" : "0.0";
  const step = op === "max" ? "acc = max(acc, x);" : "acc += x;";
  const fin = op === "mean" ? "acc / f32(p_div())" : "acc";
  return {
    key: `reduce:${op}`,
    code: `${prelude(REDUCE_PARAMS)}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let outer = p_outer();
  let len = p_len();
  let inner = p_inner();
  let chunk = p_chunk();
  let S = p_chunks();
  if (i >= outer * S * inner) { return; }
  let j = i % inner;
  let s = (i / inner) % S;
  let o = i / (inner * S);
  var acc: f32 = ${init};
  for (var l = s * chunk; l < min(len, (s + 1u) * chunk); l++) {
    let x = A[(o * len + l) * inner + j];
    ${step}
  }
  O[i] = ${fin};
}`,
  };
}

/** Chunks for a reduction of `len` with `outputs` results: 1 (one pass) unless the axis is long. */
export function reduceChunks(len: number, outputs: number): number {
  if (len < 2048 || outputs > 65536) return 1;
  return Math.min(256, Math.ceil(len / 256));
}
