/**
 * CPU twin of the WGSL `matmulF16Kernel`: the product of f16 matrices with f32 or f16
 * accumulation, step for step as each GPU thread does it. A new file: the f32 CPU matmul
 * (`matmulCpu`) is untouched.
 *
 * A Float16Array element read as a JS number is the f16 value exactly. The product of two f16
 * values has at most 22 significant bits and an exponent within f32's normal range, so it is
 * exact both as a double and as an f32; `Math.fround(s + x·y)` is therefore exactly the GPU's f32
 * `fma`. In f16 the product is not exact, and WGSL lets `fma` be fused or not: the twin rounds
 * the product and then the sum to f16, `Math.f16round(s + Math.f16round(x·y))`, which is what
 * lavapipe computes (bit for bit); a GPU with a fused f16 fma (one rounding per step) differs by
 * at most one product rounding per step, within the same error bound.
 *
 * @module
 */

import type { MatmulParams } from "../backend.ts";

/** Accumulation type (`"f32"` or `"f16"`) and output type (`"f16"` or `"f32"`). */
export interface F16MatmulMode {
  /** Round every partial sum to this type. */
  accumulate: "f32" | "f16";
  /** Output array type. */
  out: "f16" | "f32";
}

/**
 * `out[b] = op(A[b]) · op(B[b]) (+ bias)` on f16 data (see {@link MatmulParams} for the layout):
 * each output sums k = 0 … K-1 in order from 0, rounding every step to the accumulation type
 * (in f16 the product too),
 * then adds the bias (one more rounding) and converts to the output type (round to nearest even).
 * Plain loops: a reference for tests and the CPU backend, not a fast path.
 */
export function matmulF16Cpu(
  a: Float16Array,
  b: Float16Array,
  bias: Float16Array | null,
  p: MatmulParams,
  mode: F16MatmulMode = { accumulate: "f32", out: "f16" },
): Float16Array | Float32Array {
  const { batch, M, N, K, transA, transB, strideA, strideB } = p;
  const f16 = mode.accumulate === "f16";
  const round = f16 ? Math.f16round : Math.fround;
  const out = mode.out === "f16"
    ? new Float16Array(batch * M * N)
    : new Float32Array(batch * M * N);
  // Element (i, k) of op(A) is a[a0 + i·sai + k·sak]; (k, j) of op(B) is b[b0 + k·sbk + j·sbj].
  const [sai, sak] = transA ? [1, M] : [K, 1];
  const [sbk, sbj] = transB ? [1, K] : [N, 1];
  for (let z = 0; z < batch; z++) {
    const a0 = z * strideA, b0 = z * strideB, o0 = z * M * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const x = a[a0 + i * sai + k * sak] * b[b0 + k * sbk + j * sbj];
          s = round(s + (f16 ? Math.f16round(x) : x));
        }
        if (bias) s = round(s + bias[j]);
        out[o0 + i * N + j] = s;
      }
    }
  }
  return out;
}
