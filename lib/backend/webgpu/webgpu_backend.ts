/**
 * The WebGPU backend: every op is a WGSL kernel recorded through the {@link GpuEngine}.
 *
 * @module
 */

import {
  type AdamParams,
  type Backend,
  type BinaryOp,
  type DType,
  DTYPE_BYTES,
  type HostArray,
  type MatmulParams,
  newBackendId,
  type ReduceOp,
  type Storage,
  type StridedParams,
  type UnaryOp,
} from "../backend.ts";
import { f32Bits, type GpuEngine, groups1d } from "./engine.ts";
import {
  adamwKernel,
  crossEntropyBackwardKernel,
  embeddingBackwardKernel,
  layerNormBackwardCols,
  layerNormBackwardRows,
  sgdKernel,
  unnarrowKernel,
} from "./kernels/backward.ts";
import { binaryKernel, MAX_RANK, unaryKernel } from "./kernels/elementwise.ts";
import { castKernel, embeddingKernel, stridedKernel } from "./kernels/gather.ts";
import { matmulKernel, TILE } from "./kernels/matmul.ts";
import { F16_TILE, matmulF16Kernel } from "./kernels/matmul_f16.ts";
import { reduceKernel } from "./kernels/reduce.ts";
import { crossEntropyKernel, layerNormKernel, softmaxKernel } from "./kernels/rows.ts";

/** WebGPU storage: a pooled GPUBuffer (possibly larger than the tensor). */
export interface GpuStorage extends Storage {
  /** The buffer. */
  readonly buffer: GPUBuffer;
}

function pad(xs: number[], n: number): number[] {
  return [...xs, ...new Array(n - xs.length).fill(0)];
}

/** WGSL compute on a GPUDevice (hardware or Mesa's software lavapipe). */
export class WebGpuBackend implements Backend {
  /** Always `"webgpu"`. */
  readonly kind = "webgpu" as const;
  /** Unique backend id. */
  readonly id: number = newBackendId();
  /** The engine: device, pool, pipelines, batching. */
  readonly engine: GpuEngine;
  private dummy: GPUBuffer;

  /** A backend over an engine. */
  constructor(engine: GpuEngine) {
    this.engine = engine;
    this.dummy = engine.alloc(4);
  }
  /** The adapter's description. */
  get description(): string {
    return this.engine.description;
  }
  /** Whether the device has `shader-f16`. */
  get hasF16(): boolean {
    return this.engine.hasF16;
  }

  /** The buffer behind a storage of this backend. */
  private buf(s: Storage): GPUBuffer {
    if (s.backendId !== this.id) throw new Error("webgpu backend: storage from another backend");
    return (s as GpuStorage).buffer;
  }
  /** A fresh pooled output buffer of `n` elements. */
  private out(n: number, dtype: DType = "f32"): GpuStorage {
    return { backendId: this.id, buffer: this.engine.alloc(n * DTYPE_BYTES[dtype]) };
  }
  /** Throws unless f16 is usable when `dtype` is f16. */
  private need16(dtype: DType): void {
    if (dtype === "f16" && !this.hasF16) {
      throw new Error(
        `webgpu: f16 needs the 'shader-f16' feature, which ${this.description} lacks`,
      );
    }
  }

  /** Copies host data into a new buffer. */
  upload(dtype: DType, data: HostArray): Storage {
    this.need16(dtype);
    const s = this.out(data.length, dtype);
    this.engine.write(s.buffer, data);
    return s;
  }
  /** A zero-filled buffer. */
  zeros(dtype: DType, n: number): Storage {
    this.need16(dtype);
    const s = this.out(n, dtype);
    this.engine.write(s.buffer, new Uint8Array(Math.ceil((n * DTYPE_BYTES[dtype]) / 4) * 4));
    return s;
  }
  /** Reads `n` elements back (submits pending work). */
  async read(s: Storage, dtype: DType, n: number): Promise<HostArray> {
    const bytes = await this.engine.read(this.buf(s), n * DTYPE_BYTES[dtype]);
    return dtype === "f32"
      ? new Float32Array(bytes)
      : dtype === "f16"
      ? new Float16Array(bytes)
      : new Int32Array(bytes);
  }
  /** Overwrites elements in place (submits recorded work first, so it cannot overtake it). */
  write(s: Storage, data: HostArray): void {
    this.engine.write(this.buf(s), data);
  }
  /** Returns the buffer to the pool. */
  free(s: Storage): void {
    this.engine.release(this.buf(s));
  }
  /** Submits and waits. */
  sync(): Promise<void> {
    return this.engine.sync();
  }

  /**
   * See {@link Backend.matmul}. With `p.dtype === "f16"` (A, B and bias all f16) it runs the f16
   * kernel, accumulating in `p.accumulate` (default f32) and writing `p.outDtype` (default f16).
   */
  matmul(
    a: Storage,
    b: Storage,
    bias: Storage | null,
    // The fields of MatmulDtypeParams (kernels/matmul_f16.ts), spelled out for the public docs.
    p: MatmulParams & {
      dtype?: "f32" | "f16";
      accumulate?: "f32" | "f16";
      outDtype?: "f16" | "f32";
    },
  ): Storage {
    if (p.batch > 65535) throw new RangeError(`webgpu matmul: batch ${p.batch} > 65535`);
    if (p.dtype === "f16") {
      this.need16("f16");
      const out = p.outDtype ?? "f16";
      const o = this.out(p.batch * p.M * p.N, out);
      this.engine.run(
        matmulF16Kernel(p.accumulate ?? "f32", out),
        [this.buf(a), this.buf(b), bias ? this.buf(bias) : this.dummy, o.buffer],
        [p.M, p.N, p.K, +p.transA, +p.transB, p.strideA, p.strideB, bias ? 1 : 0],
        [Math.ceil(p.N / F16_TILE), Math.ceil(p.M / F16_TILE), p.batch],
      );
      return o;
    }
    const o = this.out(p.batch * p.M * p.N);
    this.engine.run(
      matmulKernel(),
      [this.buf(a), this.buf(b), bias ? this.buf(bias) : this.dummy, o.buffer],
      [p.M, p.N, p.K, +p.transA, +p.transB, p.strideA, p.strideB, bias ? 1 : 0],
      [Math.ceil(p.N / TILE), Math.ceil(p.M / TILE), p.batch],
    );
    return o;
  }
  /** See {@link Backend.binary}. */
  binary(
    op: BinaryOp,
    a: Storage,
    b: Storage,
    shape: number[],
    aStrides: number[],
    bStrides: number[],
  ): Storage {
    if (shape.length > MAX_RANK) throw new RangeError(`webgpu ${op}: rank ${shape.length} > 6`);
    const n = shape.reduce((x, y) => x * y, 1);
    const o = this.out(n);
    const params = [
      n,
      shape.length,
      ...pad(shape, MAX_RANK),
      ...pad(aStrides, MAX_RANK),
      ...pad(bStrides, MAX_RANK),
    ];
    this.engine.run(binaryKernel(op), [this.buf(a), this.buf(b), o.buffer], params, groups1d(n));
    return o;
  }
  /** See {@link Backend.unary}. */
  unary(op: UnaryOp, a: Storage, n: number, alpha: number): Storage {
    const o = this.out(n);
    this.engine.run(unaryKernel(op), [this.buf(a), o.buffer], [n, f32Bits(alpha)], groups1d(n));
    return o;
  }
  /** See {@link Backend.reduce}. */
  reduce(op: ReduceOp, a: Storage, outer: number, len: number, inner: number): Storage {
    const o = this.out(outer * inner);
    this.engine.run(
      reduceKernel(op),
      [this.buf(a), o.buffer],
      [outer, len, inner],
      groups1d(outer * inner),
    );
    return o;
  }
  /** See {@link Backend.softmax}. */
  softmax(a: Storage, rows: number, cols: number, log: boolean, causal: boolean): Storage {
    const o = this.out(rows * cols);
    this.engine.run(
      softmaxKernel(),
      [this.buf(a), o.buffer],
      [rows, cols, +log, +causal],
      groups1d(rows),
    );
    return o;
  }
  /** See {@link Backend.layerNorm}. */
  layerNorm(
    x: Storage,
    gamma: Storage,
    beta: Storage,
    rows: number,
    cols: number,
    eps: number,
  ): Storage {
    const o = this.out(rows * cols);
    this.engine.run(
      layerNormKernel(),
      [this.buf(x), this.buf(gamma), this.buf(beta), o.buffer],
      [rows, cols, f32Bits(eps)],
      groups1d(rows),
    );
    return o;
  }
  /** See {@link Backend.embedding}. */
  embedding(ids: Storage, table: Storage, n: number, V: number, C: number): Storage {
    const o = this.out(n * C);
    this.engine.run(
      embeddingKernel(),
      [this.buf(ids), this.buf(table), o.buffer],
      [n, V, C],
      groups1d(n * C),
    );
    return o;
  }
  /** See {@link Backend.crossEntropy}. */
  crossEntropy(logits: Storage, targets: Storage, rows: number, V: number): Storage {
    const o = this.out(rows);
    this.engine.run(
      crossEntropyKernel(),
      [this.buf(logits), this.buf(targets), o.buffer],
      [rows, V],
      groups1d(rows),
    );
    return o;
  }
  /** See {@link Backend.strided}. */
  strided(a: Storage, dtype: DType, p: StridedParams): Storage {
    if (p.shape.length > MAX_RANK) throw new RangeError(`webgpu strided: rank > ${MAX_RANK}`);
    this.need16(dtype);
    const n = p.shape.reduce((x, y) => x * y, 1);
    const o = this.out(n, dtype);
    const params = [n, p.shape.length, p.offset, ...pad(p.shape, MAX_RANK), ...pad(p.strides, 6)];
    const k = stridedKernel(dtype === "f16" ? "f16" : "u32");
    this.engine.run(k, [this.buf(a), o.buffer], params, groups1d(n));
    return o;
  }
  /** See {@link Backend.cast}. */
  cast(a: Storage, from: DType, to: DType, n: number): Storage {
    if (from === "i32" || to === "i32") {
      throw new Error(`webgpu cast: ${from} -> ${to} unsupported`);
    }
    this.need16("f16");
    const o = this.out(n, to);
    this.engine.run(castKernel(from, to), [this.buf(a), o.buffer], [n], groups1d(n));
    return o;
  }

  /** See {@link Backend.layerNormBackward}. */
  layerNormBackward(
    x: Storage,
    gamma: Storage,
    dy: Storage,
    rows: number,
    cols: number,
    eps: number,
  ): { dx: Storage; dgamma: Storage; dbeta: Storage } {
    const dx = this.out(rows * cols), stats = this.out(2 * rows);
    const dgamma = this.out(cols), dbeta = this.out(cols);
    this.engine.run(
      layerNormBackwardRows(),
      [this.buf(x), this.buf(gamma), this.buf(dy), dx.buffer, stats.buffer],
      [rows, cols, f32Bits(eps)],
      groups1d(rows),
    );
    this.engine.run(
      layerNormBackwardCols(),
      [this.buf(x), this.buf(dy), stats.buffer, dgamma.buffer, dbeta.buffer],
      [rows, cols],
      groups1d(cols),
    );
    this.free(stats);
    return { dx, dgamma, dbeta };
  }
  /** See {@link Backend.embeddingBackward}. */
  embeddingBackward(ids: Storage, dy: Storage, n: number, V: number, C: number): Storage {
    const o = this.out(V * C);
    this.engine.run(
      embeddingBackwardKernel(),
      [this.buf(ids), this.buf(dy), o.buffer],
      [n, V, C],
      groups1d(V * C),
    );
    return o;
  }
  /** See {@link Backend.crossEntropyBackward}. */
  crossEntropyBackward(
    logits: Storage,
    targets: Storage,
    g: Storage,
    rows: number,
    V: number,
  ): Storage {
    const o = this.out(rows * V);
    this.engine.run(
      crossEntropyBackwardKernel(),
      [this.buf(logits), this.buf(targets), this.buf(g), o.buffer],
      [rows, V],
      groups1d(rows),
    );
    return o;
  }
  /** See {@link Backend.unnarrow}. */
  unnarrow(
    a: Storage,
    outer: number,
    len: number,
    inner: number,
    full: number,
    start: number,
  ): Storage {
    const n = outer * full * inner;
    const o = this.out(n);
    this.engine.run(
      unnarrowKernel(),
      [this.buf(a), o.buffer],
      [outer, len, inner, full, start],
      groups1d(n),
    );
    return o;
  }
  /** See {@link Backend.adamw}. */
  adamw(p: Storage, g: Storage, m: Storage, v: Storage, n: number, h: AdamParams): void {
    const f = [h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.biasCorrection1, h.biasCorrection2];
    this.engine.run(
      adamwKernel(),
      [this.buf(p), this.buf(g), this.buf(m), this.buf(v)],
      [n, ...f.map(f32Bits)],
      groups1d(n),
    );
  }
  /** See {@link Backend.sgd}. */
  sgd(
    p: Storage,
    g: Storage,
    buf: Storage,
    n: number,
    lr: number,
    momentum: number,
    weightDecay: number,
  ): void {
    this.engine.run(
      sgdKernel(),
      [this.buf(p), this.buf(g), this.buf(buf)],
      [n, f32Bits(lr), f32Bits(momentum), f32Bits(weightDecay)],
      groups1d(n),
    );
  }
}
