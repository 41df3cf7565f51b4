/**
 * Double quantization of the per-block absmax constants, as QLoRA does.
 *
 * The constants (f32, all >= 0) minus their mean are quantized to 8 bits in blocks of 256
 * (default), with one f32 scale (the block's max |residual|) per block; the f32 mean is kept.
 *
 * 8-bit code: signed int8 absmax, q = round(r * 127 / scale) (half away from zero), in
 * -127..127. bitsandbytes uses a dynamic (non-linear) 8-bit map here instead; int8 absmax is
 * simpler and its error is easy to state: each reconstructed constant is within
 * scale / 254 of the true one (half a step; plus f32 rounding), where scale is the largest
 * |absmax - mean| in its block of 256. The reconstruction is clamped at 0 (a true absmax is
 * never negative), which can only reduce that error.
 *
 * @module
 */

import { roundHalfAway } from "./check.ts";

/** Default number of absmax constants sharing one f32 scale. */
export const DQ_BLOCK_SIZE = 256;

/** Absmax constants stored as int8 residuals + f32 scales + f32 mean. */
export class DoubleQuantAbsmax {
  /** Residual codes in -127..127: Int8Array [length]. */
  readonly codes: Int8Array;
  /** Max |residual| per block: Float32Array [ceil(length / blockSize)]. */
  readonly scales: Float32Array;
  /** The mean of the constants: Float32Array [1]. */
  readonly mean: Float32Array;
  /** Constants per scale (256 by default). */
  readonly blockSize: number;

  /** Wraps existing arrays; see {@link doubleQuantize} to build one. */
  constructor(codes: Int8Array, scales: Float32Array, mean: Float32Array, blockSize: number) {
    if (scales.length !== Math.ceil(codes.length / blockSize) || mean.length !== 1) {
      throw new Error("DoubleQuantAbsmax: array lengths do not match");
    }
    this.codes = codes;
    this.scales = scales;
    this.mean = mean;
    this.blockSize = blockSize;
  }

  /** Number of constants. */
  get length(): number {
    return this.codes.length;
  }

  /** Bytes held: codes + scales + mean. */
  get bytes(): number {
    return this.codes.byteLength + this.scales.byteLength + this.mean.byteLength;
  }

  /** The reconstructed constants: max(0, q * scale / 127 + mean), Float32Array [length]. */
  dequantize(): Float32Array {
    const out = new Float32Array(this.length);
    const mean = this.mean[0];
    for (let i = 0; i < this.length; i++) {
      const scale = this.scales[Math.floor(i / this.blockSize)];
      out[i] = Math.max(0, (this.codes[i] * scale) / 127 + mean);
    }
    return out;
  }
}

/**
 * Double-quantizes absmax constants.
 *
 * @param absmax Float32Array [n], finite and >= 0
 * @param blockSize constants per f32 scale, an integer >= 1 (default 256)
 */
export function doubleQuantize(absmax: Float32Array, blockSize = DQ_BLOCK_SIZE): DoubleQuantAbsmax {
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new Error(`doubleQuantize: block size ${blockSize} must be an integer >= 1`);
  }
  let sum = 0; // float64 accumulation
  for (let i = 0; i < absmax.length; i++) {
    const a = absmax[i];
    if (!Number.isFinite(a) || a < 0) throw new Error(`doubleQuantize: absmax ${i} is ${a}`);
    sum += a;
  }
  const mean = new Float32Array(1);
  mean[0] = absmax.length > 0 ? sum / absmax.length : 0;
  const m = mean[0]; // subtract the stored (f32) mean, so dequantize adds back the same number
  const codes = new Int8Array(absmax.length);
  const scales = new Float32Array(Math.ceil(absmax.length / blockSize));
  for (let b = 0; b < scales.length; b++) {
    const start = b * blockSize;
    const end = Math.min(start + blockSize, absmax.length);
    let s = 0;
    for (let i = start; i < end; i++) s = Math.max(s, Math.abs(absmax[i] - m));
    scales[b] = s;
    if (scales[b] === 0) continue; // all constants equal the mean: codes stay 0
    for (let i = start; i < end; i++) {
      const q = roundHalfAway(((absmax[i] - m) * 127) / scales[b]);
      codes[i] = Math.max(-127, Math.min(127, q)); // scale is f32-rounded: keep q in range
    }
  }
  return new DoubleQuantAbsmax(codes, scales, mean, blockSize);
}
