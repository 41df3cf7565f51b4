/**
 * What one backend supplies for quantized weights: how it holds a packed weight and how it runs
 * the products with it (candle's `QStorage` arms, one file per backend: `qmatmul_cpu.ts`,
 * `qmatmul_webgpu.ts`; the table of them is `qmatmul_impl.ts`). `toDevice` and `qmatmul` check
 * their arguments once and then hand over to `IMPL[backend.kind]`.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { Tensor } from "../tensor.ts";
import type { PackedArrays, PackedLayout, PackedWeight } from "./formats/format.ts";

/**
 * What a `DeviceWeight` owns: the host arrays as they are (CPU), or one storage buffer per array
 * (WebGPU; `borrowed` is shared by many weights and never released by one, `release` gives the
 * others back to their pool).
 */
export type HeldWeight =
  | { host: PackedArrays }
  | { gpu: GPUBuffer[]; borrowed?: GPUBuffer | null; release?: (b: GPUBuffer) => void };

/** The view of a `DeviceWeight` that a backend's half reads. */
export interface HeldWeightView {
  /** The backend holding it. */
  readonly backend: Backend;
  /** Format, shape and block sizes. */
  readonly layout: PackedLayout;
  /** The host arrays (CPU backend). */
  hostArrays(): PackedArrays;
  /** The storage buffers in binding order (WebGPU). */
  gpuBuffers(): readonly GPUBuffer[];
}

/** A checked product `x · op(W) (+ bias)`, as `qmatmul` hands it to a backend. */
export interface QmatmulCall {
  /** x, f32 [..., inner] on the weight's backend. */
  readonly x: Tensor;
  /** The weight W [N, K]. */
  readonly w: HeldWeightView;
  /** Bias [outs] or undefined. */
  readonly bias: Tensor | undefined;
  /** Multiply by W (x: [..., N] -> [..., K]) instead of Wᵀ. */
  readonly transW: boolean;
  /** Use the matrix-vector kernel (few rows) rather than the tiled one. */
  readonly matvec: boolean;
  /** Rows of x: x.size / inner. */
  readonly M: number;
  /** The output's shape, [..., outs]. */
  readonly outShape: number[];
  /** The product for messages, e.g. `qmatmul: x [2,8] @ nf4 W [16,8]ᵀ`. */
  readonly what: string;
}

/** One backend's half of quantized weights. */
export interface QmatmulBackend {
  /** Puts a packed weight on `dev`: what the `DeviceWeight` then owns. */
  upload(dev: Backend, p: PackedWeight): HeldWeight;
  /** W de-quantized to an f32 tensor [N, K] on the weight's backend. */
  dequantize(w: HeldWeightView): Tensor;
  /** The product, f32 of shape `c.outShape`. */
  qmatmul(c: QmatmulCall): Tensor;
}
