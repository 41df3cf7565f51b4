/**
 * WGSL blockwise 4-bit quantization (NF4, FP4, int4): f32 weights in, the packed codes and the
 * per-block absmax out, in the layout of `lib/quant/formats/blockwise4.ts` (codes eight per u32,
 * element 8w+j in bits 4j..4j+3; absmax [numBlocks] f32). One thread per block: it takes the
 * block's absmax m = max |w| (exact, as the CPU), then for each weight the code of the f32
 * x = w / m by counting the format's thresholds at or below x (`lib/quant/code_thresholds.ts`,
 * which gives the CPU's nearest code, ties to the smaller index, for every f32 x). A block of
 * zeros, and the padding past the last weight of a ragged last block, get the code of 0.0.
 *
 * CPU twin: `quantizeBlockwise4`. It divides in float64 where this kernel divides in f32 (and
 * WGSL allows its division 2.5 ulp of error), so a code may differ where w / m lies within f32
 * rounding of a midpoint between two code values: |w/m − midpoint| ≤ 2^-22 (x lies in [-1, 1],
 * so that is at least 4 ulp of x). The absmax are equal bit for bit. Weights must be finite (the
 * caller checks) and a block's absmax a normal f32 (≥ 2^-126; a GPU may flush subnormals).
 *
 * The kernel reads one chunk of the weights (a whole number of blocks, so that a tensor over the
 * adapter's largest buffer is quantized in pieces) and writes its blocks from `block0` on.
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { MAIN_1D, paramLayout, type ParamsOf, prelude } from "./common.ts";

/** What the kernel bakes in about the format, built by `lib/quant/quantize_webgpu.ts`. */
export interface Quantize4Spec {
  /** The part of the pipeline key naming the format and block size, e.g. `nf4:b64`. */
  readonly key: string;
  /** Weights per block: a multiple of 8. */
  readonly blockSize: number;
  /** Ascending f32 thresholds between the distinct code values: [n - 1]. */
  readonly thresholds: ArrayLike<number>;
  /** The code of the k-th smallest distinct value: [n]. */
  readonly codes: ArrayLike<number>;
  /** The code of 0.0 (zero blocks and padding). */
  readonly zeroCode: number;
}

/**
 * Parameters of {@link quantize4Kernel}: the weights in this chunk (a multiple of the block size
 * except in the last chunk) and the index of the chunk's first block in the whole tensor.
 */
export const QUANTIZE4_PARAMS = paramLayout({ numel: "u32", block0: "u32" });
/** Launcher of {@link quantize4Kernel}. Dispatch: {@link quantize4Groups}. */
export function quantize4Params(p: ParamsOf<typeof QUANTIZE4_PARAMS>): number[] {
  return QUANTIZE4_PARAMS.pack(p);
}

/** Blocks (threads) of a chunk of `numel` weights: ⌈numel / blockSize⌉. */
export function quantize4Blocks(numel: number, blockSize: number): number {
  return Math.ceil(numel / blockSize);
}

/** An f32 as a WGSL literal that parses back to the same f32. */
function lit(x: number): string {
  const s = String(Math.fround(x));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/**
 * Quantizes one chunk: W [numel] f32 → Q words [(block0 + b) · blockSize/8 + w] and S absmax
 * [block0 + b] for its blocks b. params: {@link QUANTIZE4_PARAMS}. Bindings: W (read), Q, S.
 * Dispatch: `groups1d(quantize4Blocks(numel, blockSize))`.
 */
export function quantize4Kernel(s: Quantize4Spec): Kernel {
  const nt = s.thresholds.length;
  const th = Array.from(s.thresholds, lit).join(", ");
  const codes = Array.from(s.codes, (c) => `${c}u`).join(", ");
  const bs = s.blockSize;
  return {
    key: `quantize4:${s.key}`,
    code: `${prelude(QUANTIZE4_PARAMS)}
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> Q: array<u32>;
@group(0) @binding(3) var<storage, read_write> S: array<f32>;
var<private> TH: array<f32, ${nt}> = array<f32, ${nt}>(${th});
var<private> CODES: array<u32, ${nt + 1}> = array<u32, ${nt + 1}>(${codes});
fn code_of(x: f32) -> u32 {
  var k = 0u;
  for (var t = 0u; t < ${nt}u; t++) { k += select(0u, 1u, x >= TH[t]); }
  return CODES[k];
}
${MAIN_1D} {
  let b = gidx(gid, nwg);
  let n = p_numel();
  let start = b * ${bs}u;
  if (start >= n) { return; }
  let end = min(start + ${bs}u, n);
  var m = 0.0;
  for (var i = start; i < end; i++) { m = max(m, abs(W[i])); }
  let g = p_block0() + b;
  S[g] = m;
  for (var w = 0u; w < ${bs / 8}u; w++) {
    var word = 0u;
    for (var j = 0u; j < 8u; j++) {
      let i = start + 8u * w + j;
      var c = ${s.zeroCode}u;
      if (i < end && m > 0.0) { c = code_of(W[i] / m); }
      word = word | (c << (4u * j));
    }
    Q[g * ${bs / 8}u + w] = word;
  }
}`,
  };
}
