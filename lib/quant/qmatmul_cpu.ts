/**
 * CPU twins of the quantized-weight kernels: de-quantize W a row at a time in float32 (the
 * {@link Decoder} of `packed.ts`, the same f32 steps as the WGSL `wval`) and multiply, with plain
 * loops ({@link qmatmulCpu}, the reference) or, for batches, a panel of rows at a time through the
 * CPU backend's f32 matmul (OpenBLAS when present; {@link qmatmulCpuPanels}). W is never
 * expanded beyond one panel (1 MiB of f32). {@link CPU_QMATMUL} is the CPU half of quantized
 * weights (`IMPL.cpu`): the arrays stay as they are (4-bit blockwise ones copied once into the
 * shared WebAssembly arena, `wasm_arena.ts`), and the products run on them; its matrix–vector
 * products (M ≤ 4 rows, x · Wᵀ) with 4-bit blockwise weights go through `qmatvecCpuFast`
 * (`qmatvec_cpu_fast.ts`, within (blockSize/16 + 6)·2^-24·Σ|x·w| of {@link qmatmulCpu}).
 *
 * @module
 */

import type { CpuStorage } from "../backend/cpu/cpu_backend.ts";
import { matmulCpu } from "../backend/cpu/kernels.ts";
import { Tensor } from "../tensor.ts";
import { type Decoder, makeDecoder, type PackedArrays, type PackedLayout } from "./packed.ts";
import type { QmatmulBackend } from "./qmatmul_backend.ts";
import { hasFastMatvec, qmatvecCpuFast } from "./qmatvec_cpu_fast.ts";
import { place } from "./wasm_arena.ts";

/** f32 weights de-quantized per panel by {@link qmatmulCpuPanels} (1 MiB). */
const PANEL_ELEMS = 1 << 18;

/** W [N, K] as f32: Float32Array [N·K]. Twin of `qDequantKernel`. */
export function dequantizeCpu(layout: PackedLayout, arrays: PackedArrays): Float32Array {
  const out = new Float32Array(layout.N * layout.K);
  makeDecoder({ layout, arrays })(0, out.length, out);
  return out;
}

/**
 * y = x · Wᵀ (+ bias), or with `transW` y = x · W (+ bias). Twin of the tiled matmul variants with a weight decoder (kernels/matmul.ts) and
 * `qMatvecKernel`. Products are summed in float64 (JS numbers) and rounded to f32 once.
 *
 * @param x Float32Array [M, K] ([M, N] with transW)
 * @param bias Float32Array [N] ([K] with transW) or null
 * @returns Float32Array [M, N] ([M, K] with transW)
 */
export function qmatmulCpu(
  layout: PackedLayout,
  arrays: PackedArrays,
  x: Float32Array,
  M: number,
  bias: Float32Array | null,
  transW: boolean,
): Float32Array {
  const { N, K } = layout;
  const decode: Decoder = makeDecoder({ layout, arrays });
  const row = new Float32Array(K); // W[n, :]
  if (!transW) {
    const y = new Float32Array(M * N); // [M, N]
    for (let n = 0; n < N; n++) {
      decode(n * K, K, row);
      const b = bias ? bias[n] : 0;
      for (let m = 0; m < M; m++) {
        let s = 0;
        const x0 = m * K;
        for (let k = 0; k < K; k++) s += x[x0 + k] * row[k];
        y[m * N + n] = s + b;
      }
    }
    return y;
  }
  const acc = new Float64Array(M * K); // [M, K]
  for (let n = 0; n < N; n++) {
    decode(n * K, K, row);
    for (let m = 0; m < M; m++) {
      const xv = x[m * N + n];
      const a0 = m * K;
      for (let k = 0; k < K; k++) acc[a0 + k] += xv * row[k];
    }
  }
  const y = new Float32Array(M * K); // [M, K]
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) y[m * K + k] = acc[m * K + k] + (bias ? bias[k] : 0);
  }
  return y;
}

/**
 * The same product as {@link qmatmulCpu}, a panel of W's rows at a time: each panel
 * (⌊2^18 / K⌋ rows, at least 1) is de-quantized to f32 and multiplied with the CPU backend's
 * `matmulCpu` (OpenBLAS sgemm when available), which is what makes training batches fast.
 */
export function qmatmulCpuPanels(
  layout: PackedLayout,
  arrays: PackedArrays,
  x: Float32Array,
  M: number,
  bias: Float32Array | null,
  transW: boolean,
): Float32Array {
  const { N, K } = layout;
  const decode = makeDecoder({ layout, arrays });
  const P = Math.max(1, Math.min(N, Math.floor(PANEL_ELEMS / K)));
  const panel = new Float32Array(P * K); // W[n0 : n0+p, :]
  const outs = transW ? K : N;
  const y = new Float32Array(M * outs); // [M, outs]
  // One scratch array for all panels (fresh ones per panel were garbage the GC collected late:
  // 130 MB per backward product at TinyLlama's MLP shape): x · Wpᵀ [M, P], or x[:, panel] [M, P].
  const scratch = new Float32Array(M * P);
  for (let n0 = 0; n0 < N; n0 += P) {
    const p = Math.min(P, N - n0);
    const wp = panel.subarray(0, p * K);
    decode(n0 * K, p * K, wp);
    const mm = { batch: 1, M, strideA: 0, strideB: 0, transA: false };
    const part = scratch.subarray(0, M * p);
    if (!transW) {
      matmulCpu(x, wp, null, { ...mm, N: p, K, transB: true }, part); // [M, p]
      for (let m = 0; m < M; m++) y.set(part.subarray(m * p, (m + 1) * p), m * N + n0);
    } else {
      for (let m = 0; m < M; m++) part.set(x.subarray(m * N + n0, m * N + n0 + p), m * p);
      // y [M, K] += x[:, panel] [M, p] · Wp [p, K]
      matmulCpu(part, wp, null, { ...mm, N: K, K: p, transB: false, accumulate: true }, y);
    }
  }
  if (bias) {
    for (let m = 0; m < M; m++) for (let o = 0; o < outs; o++) y[m * outs + o] += bias[o];
  }
  return y;
}

/** The CPU half of quantized weights (`IMPL.cpu`): host arrays, and the functions above. */
export const CPU_QMATMUL: QmatmulBackend = {
  // 4-bit blockwise weights go into the shared WebAssembly arena, where the decoding kernel
  // reads them without a copy (they stay where they are when it is full: > 4 GiB).
  upload: (_dev, p) => ({ host: hasFastMatvec(p.layout) ? place(p.arrays) : p.arrays }),
  dequantize(w) {
    const dev = w.backend;
    const data = dequantizeCpu(w.layout, w.hostArrays());
    return new Tensor(
      dev,
      { backendId: dev.id, data } as CpuStorage,
      [w.layout.N, w.layout.K],
      "f32",
    );
  },
  qmatmul(c) {
    const dev = c.x.backend;
    const xs = (c.x.storage as CpuStorage).data as Float32Array;
    const bs = c.bias ? (c.bias.storage as CpuStorage).data as Float32Array : null;
    const layout = c.w.layout, arrays = c.w.hostArrays();
    // Decoding (M ≤ 4 rows, x · Wᵀ, 4-bit blockwise): the fast path; the rest as before.
    const data = c.matvec && !c.transW && hasFastMatvec(layout)
      ? qmatvecCpuFast(layout, arrays, xs, c.M, bs)
      : (c.matvec ? qmatmulCpu : qmatmulCpuPanels)(layout, arrays, xs, c.M, bs, c.transW);
    return new Tensor(dev, { backendId: dev.id, data } as CpuStorage, c.outShape, "f32");
  },
};
