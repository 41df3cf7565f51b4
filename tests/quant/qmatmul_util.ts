/**
 * Shared pieces of the quantized-matmul tests: the format variants, random weights, the float64
 * reference (de-quantize on the CPU with lib/quant, multiply in float64) and the tolerances.
 */

import { quant, type Rng } from "../../lib/mod.ts";
import { randData, U32 } from "../harness.ts";

/** One storage format with its options. */
export interface Variant {
  /** Test label. */
  name: string;
  /** Format passed to `quantize`. */
  format: quant.QuantFormat;
  /** Double quantization of the absmax constants (4-bit formats). */
  doubleQuant: boolean;
}

/** Every format × {with, without double quantization} where it applies. */
export const VARIANTS: Variant[] = [
  ...(["f32", "f16", "bf16", "int8", "int8-row"] as const).map((format) => ({
    name: format,
    format,
    doubleQuant: false,
  })),
  ...(["nf4", "fp4", "int4"] as const).flatMap((format) => [
    { name: format, format, doubleQuant: false },
    { name: `${format}+dq`, format, doubleQuant: true },
  ]),
];

/**
 * A random weight [N, K] quantized in `v`'s format. 4-bit block sizes vary (including 40, not a
 * power of two, and sizes that leave a ragged last block); double-quantization blocks are small
 * so that several scales are in play.
 */
export function randomWeight(rng: Rng, v: Variant, N: number, K: number): quant.QuantizedWeight {
  const w = Float32Array.from(randData(rng, N * K, 0.5));
  if (N > 1) w.fill(0, 0, Math.min(K, 8)); // a few exact zeros (a zero block when K is small)
  const blockSize = [32, 40, 64, 128][rng.int(4)];
  const dqBlockSize = [1, 3, 7, 256][rng.int(4)];
  return quant.quantize(w, [N, K], v.format, {
    blockSize,
    doubleQuant: v.doubleQuant,
    dqBlockSize,
  });
}

/**
 * How far a kernel's de-quantized weight may be from `QuantizedWeight.dequantize()`, per
 * element: 0 where both are one correctly rounded f32 operation (f32, f16, bf16, 4-bit without
 * double quantization). int8 divides by 127 in f32 after a rounded product, and WGSL allows a
 * division 2.5 ulp off: we allow 2^-20 (16 u) of |w|. The double-quantized absmax is
 * map[q]·s + offset, which a shader compiler may contract into one fma (one rounding fewer):
 * we allow 2^-22 (4 u) of |code value|·(s + |offset|), the size of the terms, plus 2^-22 of |w|.
 */
export function dequantSlack(q: quant.QuantizedWeight): Float64Array {
  const d = new Float64Array(q.numel);
  const wd = q.dequantize();
  if (q instanceof quant.Int8Weight) {
    for (let i = 0; i < d.length; i++) d[i] = 2 ** -20 * Math.abs(wd[i]);
  } else if (q instanceof quant.Blockwise4Weight && q.dq) {
    const t = q.codeTable(), off = Math.abs(q.dq.offset[0]);
    for (let i = 0; i < d.length; i++) {
      const b = Math.floor(i / q.blockSize);
      const s = q.dq.scales[Math.floor(b / q.dq.blockSize)];
      d[i] = 2 ** -22 * Math.abs(t[q.code(i)]) * (s + off) + 2 ** -22 * Math.abs(wd[i]);
    }
  }
  return d;
}

/**
 * Float64 reference of `x · Wᵀ` (or `x · W` with transW) with W = q.dequantize(), and the
 * tolerance of each output: 2·(n+2)·u·Σ|x||w| (a float32 sum of n products in any order, with
 * or without fma, as tests/ops/matmul.test.ts) + Σ|x|·slack (the de-quantized weights may
 * differ by `dequantSlack`) + 1e-30 for exact zeros.
 */
export function qmatmulRef(
  q: quant.QuantizedWeight,
  x: Float32Array,
  M: number,
  bias: Float32Array | null,
  transW: boolean,
): { out: Float64Array; tol: Float64Array } {
  const [N, K] = q.shape;
  const wd = q.dequantize(), slack = dequantSlack(q);
  const inner = transW ? N : K, outs = transW ? K : N;
  const out = new Float64Array(M * outs), tol = new Float64Array(M * outs);
  for (let m = 0; m < M; m++) {
    for (let o = 0; o < outs; o++) {
      let s = bias ? bias[o] : 0, a = bias ? Math.abs(bias[o]) : 0, e = 0;
      for (let k = 0; k < inner; k++) {
        const wi = transW ? k * K + o : o * K + k; // W[n, k] at n·K + k
        const xv = x[m * inner + k];
        s += xv * wd[wi];
        a += Math.abs(xv * wd[wi]);
        e += Math.abs(xv) * slack[wi];
      }
      out[m * outs + o] = s;
      tol[m * outs + o] = 2 * (inner + 2) * U32 * a + e + 1e-30;
    }
  }
  return { out, tol };
}
