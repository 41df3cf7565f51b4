/**
 * The per-block absmax of a 4-bit packed weight as f32, stored or rebuilt from double
 * quantization with the reference decoder's f32 steps (`f32(f32(map[q] · scale) + offset)`),
 * for the fast CPU products (`qmatvec_cpu_fast.ts`, `qmatvec_simd_run.ts`).
 *
 * @module
 */

import type { PackedArrays, PackedLayout } from "./formats/format.ts";

const fr = Math.fround;

/**
 * The per-block absmax of a packed weight, Float32Array [numBlocks]: `a.absmax` itself (or
 * copied into `into`), or rebuilt from double quantization.
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
  const { dqCodes, dqScales, dqMap } = a;
  const out = into ?? new Float32Array(numBlocks);
  const bs = layout.dqBlockSize, off = dqScales![0];
  for (let b = 0; b < numBlocks; b++) {
    const q = (dqCodes[b >>> 2] >>> (8 * (b & 3))) & 255;
    const s = dqScales![1 + Math.floor(b / bs)];
    out[b] = fr(fr(dqMap![q] * s) + off);
  }
  return out;
}
