/**
 * A frozen weight W [N, K] (out × in, PyTorch Linear layout) resident on a backend in its packed
 * format: the 4-bit codes stay 4-bit, int8 stays int8. Nothing here ever makes an f32 copy of W
 * on the device; the kernels of `qmatmul.ts` de-quantize as they read.
 *
 * On the CPU backend the arrays of {@link PackedArrays} are kept as they are; on WebGPU each one
 * becomes a storage buffer from the engine's pool. Each backend's way of holding them is its half
 * in `qmatmul_impl.ts` (`qmatmul_cpu.ts`, `qmatmul_webgpu.ts`).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { type PackedArrays, packedBytes, type PackedLayout, packWeight } from "./packed.ts";
import type { HeldWeight } from "./qmatmul_backend.ts";
import { implOf } from "./qmatmul_impl.ts";
import type { QuantFormat, QuantizedWeight } from "./weight.ts";

/** A quantized weight held by a backend. Make one with {@link toDevice}. */
export class DeviceWeight {
  /** The backend holding it. */
  readonly backend: Backend;
  /** Format, shape and block sizes. */
  readonly layout: PackedLayout;
  /** Bytes of weight data the device holds (each array padded to a multiple of 4 bytes). */
  readonly bytes: number;
  /** Bytes of device memory reserved (WebGPU buffers round up to 256; equals `bytes` on CPU). */
  readonly allocatedBytes: number;
  #host: PackedArrays | null;
  #gpu: GPUBuffer[] | null;
  #borrowed: GPUBuffer | null;
  #release: ((b: GPUBuffer) => void) | null;
  #disposed = false;

  /**
   * Wraps arrays (CPU) or buffers (WebGPU) that the weight now owns, except `borrowed` (a
   * buffer shared by many weights, e.g. the standard dynamic map: bound, never released by
   * this weight); `release` gives each owned buffer back on {@link dispose}. See
   * {@link toDevice}.
   */
  constructor(backend: Backend, layout: PackedLayout, bytes: number, held: HeldWeight) {
    this.backend = backend;
    this.layout = layout;
    this.bytes = bytes;
    this.#host = "host" in held ? held.host : null;
    this.#gpu = "gpu" in held ? held.gpu : null;
    this.#borrowed = "gpu" in held ? held.borrowed ?? null : null;
    this.#release = "gpu" in held ? held.release ?? null : null;
    this.allocatedBytes = this.#gpu
      ? this.#gpu.reduce((s, b) => s + (b === this.#borrowed ? 0 : b.size), 0)
      : bytes;
  }

  /** Storage format. */
  get format(): QuantFormat {
    return this.layout.format;
  }
  /** [N, K]: rows (out) × columns (in). */
  get shape(): [number, number] {
    return [this.layout.N, this.layout.K];
  }
  /** Number of weights, N·K. */
  get numel(): number {
    return this.layout.N * this.layout.K;
  }
  /** `bytes * 8 / numel`: e.g. 4.5 for NF4 at block 64, ≈ 4.127 with double quantization. */
  get bitsPerParameter(): number {
    return (this.bytes * 8) / this.numel;
  }
  /** Whether {@link dispose} has been called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** The host arrays (CPU backend); throws on WebGPU or after dispose. */
  hostArrays(): PackedArrays {
    this.#live();
    if (!this.#host) throw new Error("DeviceWeight: not a CPU weight");
    return this.#host;
  }

  /** The storage buffers in binding order (WebGPU); throws on CPU or after dispose. */
  gpuBuffers(): readonly GPUBuffer[] {
    this.#live();
    if (!this.#gpu) throw new Error("DeviceWeight: not a WebGPU weight");
    return this.#gpu;
  }

  /** Releases the device memory. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#gpu && this.#release) {
      for (const b of this.#gpu) if (b !== this.#borrowed) this.#release(b);
    }
    this.#gpu = null;
    this.#host = null;
  }

  #live(): void {
    if (this.#disposed) {
      throw new Error(`DeviceWeight ${this.format} [${this.shape}] used after dispose()`);
    }
  }
}

/**
 * Puts a quantized 2-D weight [N, K] (out × in) on a backend in its packed format.
 *
 * @example
 * ```ts
 * const q = quantize(w, [out, inp], "nf4", { doubleQuant: true });
 * const dw = toDevice(dev, q); // dw.bitsPerParameter ≈ 4.127
 * const y = qmatmul(x, dw); // x: [..., inp] -> [..., out]
 * ```
 */
export function toDevice(dev: Backend, q: QuantizedWeight): DeviceWeight {
  const packed = packWeight(q);
  const bytes = packedBytes(packed.arrays);
  const held = implOf(dev, `toDevice: unknown backend ${dev.kind}`).upload(dev, packed);
  return new DeviceWeight(dev, packed.layout, bytes, held);
}
