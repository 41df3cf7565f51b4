/**
 * Products with a frozen quantized weight W [N, K] held by a {@link DeviceWeight}:
 * `x · Wᵀ` (a Linear layer's forward) and `x · W` (the backward dX = dY · W that LoRA needs
 * through a frozen base; no gradient of W is ever formed). On WebGPU the kernels de-quantize W
 * inside the kernel; on the CPU one row at a time. This file checks the operands and hands over
 * to the backend's half, `IMPL[backend.kind]` (`qmatmul_impl.ts`: `qmatmul_cpu.ts`,
 * `qmatmul_webgpu.ts`), as candle's `QStorage` does.
 *
 * @module
 */

import { MV_ROWS } from "../backend/webgpu/kernels/qmatmul.ts";
import { fmtShape, type Tensor } from "../tensor.ts";
import type { DeviceWeight } from "./device_weight.ts";
import { implOf } from "./qmatmul_impl.ts";

/**
 * Which kernel runs a {@link qmatmul}: `auto` picks `matvec` for ≤ {@link MATVEC_MAX_ROWS} rows
 * of x and `tiled` otherwise. On the CPU, `matvec` is the plain row loop (`qmatmulCpu`, the
 * float64 reference), or for `x · Wᵀ` with a 4-bit blockwise W `qmatvecCpuFast` (SIMD, two
 * threads; within (blockSize/16 + 6)·2^-24·Σ|x·w| of it); `tiled` goes a panel of W at a time
 * through the f32 matmul.
 */
export type QmatmulPath = "auto" | "tiled" | "matvec";

/** Options of {@link qmatmul}. */
export interface QmatmulOptions {
  /** Bias added to every output row: [N], or [K] with `transW`. */
  bias?: Tensor;
  /** Multiply by W instead of Wᵀ: x: [..., N] -> [..., K]. Default false. */
  transW?: boolean;
  /** Kernel choice (tests force each one). Default `auto`. */
  path?: QmatmulPath;
}

/** Rows of x up to which `auto` uses the matrix-vector kernel. */
export const MATVEC_MAX_ROWS: number = MV_ROWS;

/**
 * W de-quantized to an f32 tensor [N, K] on the weight's backend (for tests, merges and
 * teaching; the products never need it).
 */
export function dequantizeOnDevice(w: DeviceWeight): Tensor {
  return implOf(w.backend, "dequantizeOnDevice: unknown backend").dequantize(w);
}

/**
 * `y = x · dequant(W)ᵀ (+ bias)`: x [..., K] -> y [..., N]. With `transW`,
 * `y = x · dequant(W) (+ bias)`: x [..., N] -> y [..., K].
 *
 * @example
 * ```ts
 * const w = toDevice(dev, quantize(weights, [out, inp], "nf4", { doubleQuant: true }));
 * const y = qmatmul(x, w, { bias }); // x: [B, T, inp] -> [B, T, out]
 * const dx = qmatmul(dy, w, { transW: true }); // dy: [B, T, out] -> [B, T, inp]
 * ```
 */
export function qmatmul(x: Tensor, w: DeviceWeight, opts: QmatmulOptions = {}): Tensor {
  const transW = opts.transW ?? false;
  const bias = opts.bias;
  const [N, K] = w.shape;
  const inner = transW ? N : K, outs = transW ? K : N;
  const what = `qmatmul: x ${fmtShape(x.shape)} @ ${w.format} W [${N},${K}]${transW ? "" : "ᵀ"}`;
  if (x.backend !== w.backend || (bias && bias.backend !== x.backend)) {
    throw new Error(`${what}: operands on different backends`);
  }
  if (x.dtype !== "f32" || (bias && bias.dtype !== "f32")) {
    throw new TypeError(`${what}: x and bias must be f32`);
  }
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== inner) {
    throw new RangeError(`${what}: x's last dim should be ${inner}`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outs)) {
    throw new RangeError(`${what}: bias ${fmtShape(bias.shape)} should be [${outs}]`);
  }
  const M = x.size / inner;
  const outShape = [...x.shape.slice(0, -1), outs];
  const path = opts.path ?? "auto";
  const matvec = path === "matvec" || (path === "auto" && M <= MATVEC_MAX_ROWS);
  const impl = implOf(x.backend, `${what}: unknown backend`);
  return impl.qmatmul({ x, w, bias, transW, matvec, M, outShape, what });
}
