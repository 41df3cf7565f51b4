/**
 * The per-block absmax of a 4-bit packed weight as f32, stored or rebuilt from double
 * quantization with the reference decoder's f32 steps (`f32(f32(map[q] · scale) + offset)`),
 * for the decoder of `formats/blockwise4.ts` and the fast CPU products (`qmatvec_cpu_fast.ts`,
 * `qmatvec_simd_run.ts`).
 *
 * @module
 */

import type { PackedArrays, PackedLayout } from "./formats/format.ts";

const fr = Math.fround;

/**
 * The absmax of block b from a packed weight's side arrays: stored, or rebuilt from double
 * quantization (the CPU twin of the WGSL `amax` of `formats/blockwise4.ts`).
 */
export function absmaxOf(a: PackedArrays, layout: PackedLayout): (b: number) => number {
  const { absmax, dqCodes, dqScales, dqMap } = a;
  if (!dqCodes) return (b) => absmax![b];
  const dqBlockSize = layout.dqBlockSize;
  return (b) => {
    const q = (dqCodes[b >>> 2] >>> (8 * (b & 3))) & 255;
    const s = dqScales![1 + Math.floor(b / dqBlockSize)];
    return fr(fr(dqMap![q] * s) + dqScales![0]); // WGSL: QM[q] * s + offset
  };
}

/**
 * The per-block absmax of a packed weight, Float32Array [numBlocks]: `a.absmax` itself (or
 * copied into `into`), or rebuilt from double quantization ({@link absmaxOf}).
 */
export function absmaxArray(
  layout: PackedLayout,
  a: PackedArrays,
  numBlocks: number,
  into?: Float32Array,
): Float32Array {
  if (!a.dqCodes) {
    if (!into) return a.absmax!;
    into.set(a.absmax!.subarray(0, numBlocks));
    return into;
  }
  const out = into ?? new Float32Array(numBlocks);
  const amax = absmaxOf(a, layout);
  for (let b = 0; b < numBlocks; b++) out[b] = amax(b);
  return out;
}
