/**
 * The CPU backend: the float32 reference twin of every op. Storage is a plain typed array.
 *
 * @module
 */

import {
  adamwCpu,
  clipFactorCpu,
  crossEntropyBackwardCpu,
  embeddingBackwardCpu,
  geluBackwardCpu,
  geluWithGradCpu,
  layerNormBackwardCpu,
  sgdCpu,
  softmaxBackwardCpu,
  sumSquaresCpu,
  unnarrowCpu,
} from "./backward.ts";
import {
  type AdamParams,
  type Backend,
  type BinaryOp,
  type DType,
  type EmbeddingRows,
  type HostArray,
  type MatmulParams,
  newBackendId,
  NORM_PARTIALS,
  type ReduceOp,
  type Storage,
  type StridedParams,
  type UnaryOp,
} from "../backend.ts";
import {
  binaryCpu,
  crossEntropyCpu,
  embeddingCpu,
  layerNormCpu,
  matmulCpu,
  reduceCpu,
  softmaxCpu,
  stridedCpu,
  unaryCpu,
} from "./kernels.ts";
import { blasStatus } from "./blas.ts";
import { matmulF16Cpu } from "./matmul_f16.ts";

/** Arrays at least this big are freed at once by {@link CpuBackend.free} (smaller ones: the GC). */
export const EAGER_FREE_BYTES = 1 << 16;

/** CPU storage: the data itself. */
export interface CpuStorage extends Storage {
  /** The elements. */
  readonly data: HostArray;
}

function makeArray(dtype: DType, n: number): HostArray {
  return dtype === "f32"
    ? new Float32Array(n)
    : dtype === "f16"
    ? new Float16Array(n)
    : new Int32Array(n);
}

/** The plain-TypeScript reference backend. */
export class CpuBackend implements Backend {
  /** Always `"cpu"`. */
  readonly kind = "cpu" as const;
  /** Unique backend id. */
  readonly id: number = newBackendId();
  /**
   * Describes the backend for logs: `CPU (OpenBLAS, 2 threads)` when matrix products go through
   * BLAS, else `CPU (TypeScript loops: <why not BLAS>)`.
   */
  get description(): string {
    const s = blasStatus();
    return s.available
      ? `CPU (${s.library}, ${s.threads} thread${s.threads === 1 ? "" : "s"})`
      : `CPU (TypeScript loops: ${s.reason})`;
  }
  /** f16 storage is emulated with Float16Array. */
  readonly hasF16 = true;
  /** No limit but memory. */
  readonly maxStorageBytes: number = Infinity;
  /** Reads cost nothing on the CPU: each loss is read as it is made. */
  readonly oneWaitPerStep: boolean = false;

  /** Stamps host data as this backend's storage. */
  private wrap(data: HostArray): CpuStorage {
    return { backendId: this.id, data };
  }
  /** The f32 array behind a storage. */
  private f32(s: Storage): Float32Array {
    const d = (s as CpuStorage).data;
    if (!(d instanceof Float32Array)) throw new TypeError("cpu backend: expected f32 storage");
    return d;
  }
  /** The f16 array behind a storage. */
  private f16(s: Storage): Float16Array {
    const d = (s as CpuStorage).data;
    if (!(d instanceof Float16Array)) throw new TypeError("cpu backend: expected f16 storage");
    return d;
  }
  /** The i32 array behind a storage. */
  private i32(s: Storage): Int32Array {
    const d = (s as CpuStorage).data;
    if (!(d instanceof Int32Array)) throw new TypeError("cpu backend: expected i32 storage");
    return d;
  }

  /** Copies host data into a new storage. */
  upload(dtype: DType, data: HostArray): Storage {
    const out = makeArray(dtype, data.length);
    out.set(data);
    return this.wrap(out);
  }
  /** A zero-filled storage. */
  zeros(dtype: DType, n: number): Storage {
    return this.wrap(makeArray(dtype, n));
  }
  /** Copies the first `n` elements out. */
  read(s: Storage, dtype: DType, n: number): Promise<HostArray> {
    const out = makeArray(dtype, n);
    out.set((s as CpuStorage).data.subarray(0, n));
    return Promise.resolve(out);
  }
  /** Overwrites elements in place. */
  write(s: Storage, data: HostArray): void {
    (s as CpuStorage).data.set(data);
  }
  /**
   * Releases a storage's memory now instead of when V8's garbage collector gets to it: an array
   * of at least {@link EAGER_FREE_BYTES} that spans its whole ArrayBuffer is detached
   * (`transfer(0)`), which frees its memory at once. V8 collects big ArrayBuffers late: without
   * this, the intermediates of one training step at 1.1 B parameters pile up to 1.8 GB before a
   * collection (tests/backend/cpu_free.test.ts). Tensor.dispose calls this once no view shares
   * the storage; every CPU storage owns its array (the kernels return fresh arrays).
   */
  free(s: Storage): void {
    const d = (s as CpuStorage).data;
    const b = d.buffer;
    if (
      d.byteLength >= EAGER_FREE_BYTES && b instanceof ArrayBuffer && !b.detached &&
      d.byteOffset === 0 && d.byteLength === b.byteLength
    ) b.transfer(0);
  }
  /** Nothing is ever pending on the CPU. */
  sync(): Promise<void> {
    return Promise.resolve();
  }

  /** See {@link Backend.matmul}. */
  matmul(
    a: Storage,
    b: Storage,
    bias: Storage | null,
    p: MatmulParams,
    out?: Storage,
  ): Storage {
    if (out && (out === a || out === b || out === bias)) {
      throw new Error("cpu matmul: the output storage must not be an input");
    }
    if (p.dtype === "f16") {
      if (out || p.accumulate || (p.alpha ?? 1) !== 1) {
        throw new Error("cpu matmul: out, alpha and accumulate are f32-only");
      }
      // The WGSL kernel's twin: exact, plain loops (no BLAS for f16).
      const mode = { accumulate: p.accumDtype ?? "f32", out: p.outDtype ?? "f16" } as const;
      return this.wrap(
        matmulF16Cpu(this.f16(a), this.f16(b), bias ? this.f16(bias) : null, p, mode),
      );
    }
    const bs = bias ? this.f32(bias) : null;
    if (out) {
      matmulCpu(this.f32(a), this.f32(b), bs, p, this.f32(out));
      return out;
    }
    return this.wrap(matmulCpu(this.f32(a), this.f32(b), bs, p));
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
    return this.wrap(binaryCpu(op, this.f32(a), this.f32(b), shape, aStrides, bStrides));
  }
  /** See {@link Backend.geluWithGrad}. */
  geluWithGrad(x: Storage, n: number): { y: Storage; dydx: Storage } {
    const r = geluWithGradCpu(this.f32(x).subarray(0, n));
    return { y: this.wrap(r.y), dydx: this.wrap(r.dydx) };
  }
  /** See {@link Backend.geluBackward}. */
  geluBackward(x: Storage, g: Storage, n: number): Storage {
    return this.wrap(geluBackwardCpu(this.f32(x).subarray(0, n), this.f32(g).subarray(0, n)));
  }
  /** See {@link Backend.softmaxBackward}: bit-identical to the composed ops. */
  softmaxBackward(y: Storage, g: Storage, rows: number, cols: number): Storage {
    return this.wrap(softmaxBackwardCpu(this.f32(y), this.f32(g), rows, cols));
  }
  /** See {@link Backend.accumulate}. */
  accumulate(dst: Storage, src: Storage, n: number): void {
    const d = this.f32(dst), s = this.f32(src);
    for (let i = 0; i < n; i++) d[i] += s[i];
  }
  /** See {@link Backend.unary}. */
  unary(op: UnaryOp, a: Storage, n: number, alpha: number): Storage {
    return this.wrap(unaryCpu(op, this.f32(a).subarray(0, n), alpha));
  }
  /** See {@link Backend.reduce}. */
  reduce(op: ReduceOp, a: Storage, outer: number, len: number, inner: number): Storage {
    return this.wrap(reduceCpu(op, this.f32(a), outer, len, inner));
  }
  /** See {@link Backend.softmax}. */
  softmax(a: Storage, rows: number, cols: number, log: boolean, causal: boolean): Storage {
    return this.wrap(softmaxCpu(this.f32(a), rows, cols, log, causal));
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
    return this.wrap(layerNormCpu(this.f32(x), this.f32(gamma), this.f32(beta), rows, cols, eps));
  }
  /** See {@link Backend.embedding}. */
  embedding(
    ids: Storage,
    table: Storage,
    n: number,
    V: number,
    C: number,
    rows?: EmbeddingRows,
  ): Storage {
    const { start, total } = rows ?? { start: 0, total: V };
    return this.wrap(embeddingCpu(this.i32(ids), this.f32(table), n, V, C, start, total));
  }
  /** See {@link Backend.crossEntropy}. */
  crossEntropy(
    logits: Storage,
    targets: Storage,
    rows: number,
    V: number,
    ignore = false,
  ): Storage {
    return this.wrap(crossEntropyCpu(this.f32(logits), this.i32(targets), rows, V, ignore));
  }
  /** See {@link Backend.strided}. */
  strided(a: Storage, dtype: DType, p: StridedParams): Storage {
    const src = (a as CpuStorage).data;
    return this.wrap(stridedCpu(src, p, (n) => makeArray(dtype, n)));
  }
  /** See {@link Backend.cast}. */
  cast(a: Storage, _from: DType, to: DType, n: number): Storage {
    const out = makeArray(to, n);
    out.set((a as CpuStorage).data.subarray(0, n)); // typed-array set rounds to nearest even
    return this.wrap(out);
  }

  /** See {@link Backend.layerNormBackward}. */
  layerNormBackward(
    x: Storage,
    gamma: Storage,
    dy: Storage,
    rows: number,
    cols: number,
    eps: number,
    params = true,
  ): { dx: Storage; dgamma: Storage | null; dbeta: Storage | null } {
    const r = layerNormBackwardCpu(this.f32(x), this.f32(gamma), this.f32(dy), rows, cols, eps);
    if (!params) return { dx: this.wrap(r.dx), dgamma: null, dbeta: null };
    return { dx: this.wrap(r.dx), dgamma: this.wrap(r.dgamma), dbeta: this.wrap(r.dbeta) };
  }
  /** See {@link Backend.embeddingBackward}. */
  embeddingBackward(
    ids: Storage,
    dy: Storage,
    n: number,
    V: number,
    C: number,
    rows?: EmbeddingRows,
  ): Storage {
    const { start, total } = rows ?? { start: 0, total: V };
    return this.wrap(embeddingBackwardCpu(this.i32(ids), this.f32(dy), n, V, C, start, total));
  }
  /** See {@link Backend.crossEntropyBackward}. */
  crossEntropyBackward(
    logits: Storage,
    targets: Storage,
    g: Storage,
    rows: number,
    V: number,
    ignore = false,
  ): Storage {
    return this.wrap(
      crossEntropyBackwardCpu(this.f32(logits), this.i32(targets), this.f32(g), rows, V, ignore),
    );
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
    return this.wrap(unnarrowCpu(this.f32(a), outer, len, inner, full, start));
  }
  /** See {@link Backend.adamw}. */
  adamw(
    p: Storage,
    g: Storage,
    m: Storage,
    v: Storage,
    n: number,
    h: AdamParams,
    gscale?: Storage | null,
  ): void {
    const gs = gscale ? this.f32(gscale) : null;
    adamwCpu(this.f32(p), this.f32(g), this.f32(m), this.f32(v), n, h, gs);
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
    gscale?: Storage | null,
  ): void {
    const gs = gscale ? this.f32(gscale) : null;
    sgdCpu(this.f32(p), this.f32(g), this.f32(buf), n, lr, momentum, weightDecay, gs);
  }
  /** See {@link Backend.clipFactor}. */
  clipFactor(grads: { s: Storage; n: number }[], maxNorm: number): Storage {
    const partials = new Float32Array(grads.length * NORM_PARTIALS);
    grads.forEach((g, slot) => sumSquaresCpu(this.f32(g.s), g.n, partials, slot, NORM_PARTIALS));
    return this.wrap(clipFactorCpu(partials, partials.length, maxNorm));
  }
}
