/**
 * The WebGPU backend: every op is a WGSL kernel recorded through the {@link GpuEngine}.
 *
 * @module
 */

import {
  type AdamItem,
  type AdamParams,
  type AttentionParams,
  type Backend,
  type BinaryOp,
  type DType,
  DTYPE_BYTES,
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
import { type GpuEngine, groups1d } from "./engine.ts";
import {
  ADAMW_MANY_MAX,
  adamwKernel,
  adamwManyKernel,
  adamwManyParams,
  adamwParams,
  clipFactorKernel,
  clipFactorParams,
  crossEntropyBackwardKernel,
  embeddingBackwardKernels,
  layerNormBackwardColsKernel,
  layerNormBackwardColsParams,
  layerNormBackwardRowsKernel,
  sgdKernel,
  sgdParams,
  sumSquaresKernel,
  sumSquaresParams,
  unnarrowKernel,
  unnarrowParams,
} from "./kernels/backward.ts";
import {
  ATT_MAX_HD,
  ATT_ROWS,
  attentionBackwardKVKernel,
  attentionBackwardQKernel,
  attentionForwardKernel,
  attentionGroups,
  attentionParams,
} from "./kernels/attention.ts";
import {
  attentionKernelsFromEnv,
  type AttentionTileConfig,
  attentionTileConfig,
  attentionTiledBackwardKVKernel,
  attentionTiledBackwardQKernel,
  attentionTiledForwardKernel,
} from "./kernels/attention_tiled.ts";
import {
  F32_WEIGHT,
  MV_ROWS,
  qMatvecGroups,
  qMatvecKernel,
  qMatvecParams,
} from "./kernels/qmatmul.ts";
import { nParams } from "./kernels/common.ts";
import {
  accumulateKernel,
  binaryKernel,
  binaryParams,
  geluBackwardKernel,
  MAX_RANK,
  unaryKernel,
  unaryParams,
} from "./kernels/elementwise.ts";
import {
  castKernel,
  embeddingKernel,
  embeddingParams,
  embeddingRowsParams,
  stridedKernel,
  stridedParams,
} from "./kernels/gather.ts";
import {
  matmulGroups,
  matmulKernel,
  matmulParams,
  matmulSpec,
  type MatmulVariant,
} from "./kernels/matmul.ts";
import { MatmulSelector } from "./matmul_select.ts";
import { DEFAULT_TUNE_SHAPES, type MatmulShape, type MatmulTuneResult } from "./matmul_tuning.ts";
import { matmulF16Groups, matmulF16Kernel, matmulF16Params } from "./kernels/matmul_f16.ts";
import { reduceChunks, reduceKernel, reduceParams } from "./kernels/reduce.ts";
import {
  crossEntropyKernel,
  crossEntropyParams,
  layerNormKernel,
  layerNormParams,
  rowGroups,
  softmaxKernel,
  softmaxParams,
} from "./kernels/rows.ts";

/** WebGPU storage: a pooled GPUBuffer (possibly larger than the tensor). */
export interface GpuStorage extends Storage {
  /** The buffer. */
  readonly buffer: GPUBuffer;
}

/** WGSL compute on a GPUDevice (hardware or Mesa's software lavapipe). */
export class WebGpuBackend implements Backend {
  /** Always `"webgpu"`. */
  readonly kind = "webgpu" as const;
  /** Unique backend id. */
  readonly id: number = newBackendId();
  /** The engine: device, pool, pipelines, batching. */
  readonly engine: GpuEngine;
  // The matmul selection policy: forced, tuned or heuristic variant of each product.
  private readonly matmulSelector: MatmulSelector;
  private dummy: GPUBuffer;

  /** A backend over an engine. */
  constructor(engine: GpuEngine) {
    this.matmulSelector = new MatmulSelector(engine);
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
  /** The device's `maxStorageBufferBindingSize`. */
  get maxStorageBytes(): number {
    return this.engine.device.limits.maxStorageBufferBindingSize;
  }
  /** A GPU step waits once, at its end. */
  readonly oneWaitPerStep: boolean = true;
  /** Whether the adapter is a CPU implementation (lavapipe): no tuning by timing there. */
  get isSoftware(): boolean {
    return this.engine.isSoftware;
  }
  /** Live and peak bytes of the engine's buffers. */
  deviceMemory(): { live: number; peak: number } {
    return { live: this.engine.liveBytes, peak: this.engine.peakBytes };
  }
  /** Tunes the matmul variants on the shapes seen so far; null on a software adapter. */
  async tuneSeenShapes(): Promise<number | null> {
    if (this.engine.isSoftware) return null;
    return (await this.tuneMatmul(this.seenMatmulShapes())).length;
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
  /** Reads several storages back with one copy each into one staging buffer and one wait. */
  async readMany(items: readonly { s: Storage; dtype: DType; n: number }[]): Promise<HostArray[]> {
    const parts = await this.engine.readMany(
      items.map((it) => ({ buf: this.buf(it.s), bytes: it.n * DTYPE_BYTES[it.dtype] })),
    );
    return parts.map((bytes, i) =>
      items[i].dtype === "f32"
        ? new Float32Array(bytes)
        : items[i].dtype === "f16"
        ? new Float16Array(bytes)
        : new Int32Array(bytes)
    );
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
   * See {@link Backend.matmul}; the f32 kernel variant is {@link matmulVariantFor}'s choice. With
   * `p.dtype === "f16"` (A, B and bias all f16) it runs the f16 kernel instead, accumulating in
   * `p.accumDtype` (default f32) and writing `p.outDtype` (default f16); `out`, `alpha` and
   * `accumulate` are f32-only.
   */
  matmul(
    a: Storage,
    b: Storage,
    bias: Storage | null,
    p: MatmulParams,
    out?: Storage,
  ): Storage {
    if (p.batch > 65535) throw new RangeError(`webgpu matmul: batch ${p.batch} > 65535`);
    if (p.dtype === "f16") {
      if (out || p.accumulate || (p.alpha ?? 1) !== 1) {
        throw new Error("webgpu matmul: out, alpha and accumulate are f32-only");
      }
      this.need16("f16");
      const od = p.outDtype ?? "f16";
      const o16 = this.out(p.batch * p.M * p.N, od);
      const inputs = [this.buf(a), this.buf(b), bias ? this.buf(bias) : this.dummy, o16.buffer];
      if ((p.accumDtype ?? "f32") === "f32") {
        // f32 accumulation: the f32 variants with f16 loads (same sums, same bits as the twin).
        const v = this.matmulVariantFor(p);
        this.engine.run(
          matmulKernel(v, matmulSpec(p), undefined, { out: od }),
          inputs,
          matmulParams({ ...p, hasBias: !!bias, alpha: 1, accumulate: false }),
          matmulGroups(v, p),
        );
        return o16;
      }
      this.engine.run(
        matmulF16Kernel("f16", od),
        inputs,
        matmulF16Params({ ...p, hasBias: !!bias }),
        matmulF16Groups(p),
      );
      return o16;
    }
    const alpha = p.alpha ?? 1;
    if (!Number.isFinite(alpha)) {
      throw new RangeError(`webgpu matmul: alpha must be finite, got ${alpha}`);
    }
    if (p.accumulate && !out) {
      throw new Error("webgpu matmul: accumulate needs an output to add to");
    }
    const n = p.batch * p.M * p.N;
    const inputs = [this.buf(a), this.buf(b), bias ? this.buf(bias) : this.dummy];
    let o: GpuStorage;
    if (out) {
      o = out as GpuStorage;
      if (inputs.includes(this.buf(o))) {
        throw new Error("webgpu matmul: the output storage must not be an input");
      }
      if (o.buffer.size < n * 4) {
        throw new RangeError(
          `webgpu matmul: output of ${o.buffer.size} bytes, the product has ${n}`,
        );
      }
    } else o = this.out(n);
    const mv = this.matvecShape(p, alpha);
    if (mv) {
      // Few rows (generation): x · Wᵀ reads W [N, K] row by row; x · W reads B [K, N] as the
      // kernel's transposed W. No 64- or 128-row tile is spent on one row.
      const [Nw, Kw] = mv;
      this.engine.run(
        qMatvecKernel(F32_WEIGHT, !p.transB, p.M, Kw % 8 === 0),
        [inputs[0], bias ? inputs[2] : inputs[0], o.buffer, inputs[1]],
        qMatvecParams({ rows: p.M, outputs: p.N, inner: p.K, K: Kw, hasBias: !!bias, x0: 0 }),
        qMatvecGroups(Nw, Kw, !p.transB),
      );
      return o;
    }
    const v = this.matmulVariantFor(p);
    this.engine.run(
      matmulKernel(v, matmulSpec(p)),
      [...inputs, o.buffer],
      matmulParams({ ...p, hasBias: !!bias, alpha, accumulate: !!p.accumulate }),
      matmulGroups(v, p),
    );
    return o;
  }

  /**
   * The kernel's W shape [N, K] when an f32 product runs as a matrix-vector product
   * (`qMatvecKernel` over the plain f32 weight), else null: one matrix of at most
   * {@link MV_ROWS} untransposed rows, no scale or accumulation, and a dispatch within the limit.
   * {@link matvecProducts} turns it off.
   */
  private matvecShape(p: MatmulParams, alpha: number): [number, number] | null {
    if (!this.matvecProducts || p.batch !== 1 || p.M > MV_ROWS || p.M < 1 || p.transA) {
      return null;
    }
    if (alpha !== 1 || p.accumulate) return null;
    const w: [number, number] = p.transB ? [p.N, p.K] : [p.K, p.N];
    return qMatvecGroups(w[0], w[1], !p.transB)[0] <= 65535 ? w : null;
  }
  /**
   * Whether f32 products of at most {@link MV_ROWS} rows run as matrix-vector products (default
   * true; false sends them through the tiled matmul variants, for comparisons).
   */
  matvecProducts = true;

  /** Whether a variant's workgroup fits this device's limits. */
  matmulVariantFits(v: MatmulVariant): boolean {
    return this.matmulSelector.fits(v);
  }

  /** The name of the forced matmul variant (see {@link forceMatmulVariant}), or null. */
  get forcedMatmulVariant(): string | null {
    return this.matmulSelector.forcedName;
  }

  /**
   * Forces one matmul variant for every product (null: back to tuned / heuristic choice). Starts
   * as `LORALAB_MATMUL_VARIANT` when that is set. Throws for an unknown name or one that does not
   * fit this device.
   */
  forceMatmulVariant(name: string | null): void {
    this.matmulSelector.force(name);
  }

  /**
   * The variant a product runs with: the forced one, else the tuned winner of its bucket (see
   * `matmul_tuning.ts`), else the shape heuristic.
   */
  matmulVariantFor(p: MatmulParams): MatmulVariant {
    return this.matmulSelector.variantFor(p);
  }

  /**
   * One shape of every tuning bucket this backend has multiplied so far (first seen), e.g. after a
   * training step: `await tuneMatmul(seenMatmulShapes())` then tunes exactly the products a run
   * makes. Every variant accumulates each output over k in the same order with fma, so their
   * results are bit-identical and tuning never changes a run's numbers (tested).
   */
  seenMatmulShapes(): MatmulShape[] {
    return this.matmulSelector.seenShapes();
  }

  /**
   * Times every variant that fits the device on each shape (default {@link DEFAULT_TUNE_SHAPES})
   * and records the fastest for the shape's bucket, used by later products of that bucket unless
   * a variant is forced. On a software adapter (lavapipe) it measures nothing and returns [] unless
   * `force` is set: CPU timings would mislead. `minMs` is the time spent per variant and shape
   * (default 50). Returns what it measured.
   */
  tuneMatmul(
    shapes: readonly MatmulShape[] = DEFAULT_TUNE_SHAPES,
    opts: { force?: boolean; minMs?: number } = {},
  ): Promise<MatmulTuneResult[]> {
    return this.matmulSelector.tune(shapes, opts);
  }

  /** Forgets every tuned winner (products fall back to the heuristic). */
  clearMatmulTuning(): void {
    this.matmulSelector.clearTuning();
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
    const params = binaryParams({ n, rank: shape.length, shape, aStrides, bStrides });
    this.engine.run(binaryKernel(op), [this.buf(a), this.buf(b), o.buffer], params, groups1d(n));
    return o;
  }
  /** See {@link Backend.geluBackward}: one dispatch (`geluBackwardKernel`). */
  geluBackward(x: Storage, g: Storage, n: number): Storage {
    const o = this.out(n);
    const params = nParams({ n });
    this.engine.run(
      geluBackwardKernel(),
      [this.buf(x), this.buf(g), o.buffer],
      params,
      groups1d(n),
    );
    return o;
  }
  /** See {@link Backend.accumulate}: one dispatch (`accumulateKernel`). */
  accumulate(dst: Storage, src: Storage, n: number): void {
    this.engine.run(
      accumulateKernel(),
      [this.buf(src), this.buf(dst)],
      nParams({ n }),
      groups1d(n),
    );
  }
  /** See {@link Backend.unary}. */
  unary(op: UnaryOp, a: Storage, n: number, alpha: number): Storage {
    const o = this.out(n);
    const params = unaryParams({ n, alpha });
    this.engine.run(unaryKernel(op), [this.buf(a), o.buffer], params, groups1d(n));
    return o;
  }
  /** See {@link Backend.reduce}. */
  reduce(op: ReduceOp, a: Storage, outer: number, len: number, inner: number): Storage {
    const o = this.out(outer * inner);
    const S = reduceChunks(len, outer * inner);
    if (S === 1) {
      this.engine.run(
        reduceKernel(op),
        [this.buf(a), o.buffer],
        reduceParams({ outer, len, inner, chunk: len, chunks: 1, div: len }),
        groups1d(outer * inner),
      );
      return o;
    }
    // Long axis, few outputs: chunks first (every thread busy), then the chunks.
    const part = this.out(outer * S * inner);
    this.engine.run(
      reduceKernel(op === "max" ? "max" : "sum"),
      [this.buf(a), part.buffer],
      reduceParams({ outer, len, inner, chunk: Math.ceil(len / S), chunks: S, div: 1 }),
      groups1d(outer * S * inner),
    );
    this.engine.run(
      reduceKernel(op),
      [part.buffer, o.buffer],
      reduceParams({ outer, len: S, inner, chunk: S, chunks: 1, div: len }),
      groups1d(outer * inner),
    );
    this.free(part);
    return o;
  }
  /** See {@link Backend.softmax}. */
  softmax(a: Storage, rows: number, cols: number, log: boolean, causal: boolean): Storage {
    const o = this.out(rows * cols);
    this.engine.run(
      softmaxKernel(),
      [this.buf(a), o.buffer],
      softmaxParams({ rows, cols, log, causal }),
      rowGroups(rows),
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
      layerNormParams({ rows, cols, eps }),
      rowGroups(rows),
    );
    return o;
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
    const o = this.out(n * C);
    const { start, total } = rows ?? { start: 0, total: V };
    this.engine.run(
      embeddingKernel(),
      [this.buf(ids), this.buf(table), o.buffer],
      embeddingRowsParams({ n, V, C, start, total }),
      groups1d(n * C),
    );
    return o;
  }
  /** See {@link Backend.crossEntropy}. */
  crossEntropy(
    logits: Storage,
    targets: Storage,
    rows: number,
    V: number,
    ignore = false,
  ): Storage {
    const o = this.out(rows);
    this.engine.run(
      crossEntropyKernel(),
      [this.buf(logits), this.buf(targets), o.buffer],
      crossEntropyParams({ rows, V, ignore }),
      rowGroups(rows),
    );
    return o;
  }
  /** See {@link Backend.strided}. */
  strided(a: Storage, dtype: DType, p: StridedParams): Storage {
    if (p.shape.length > MAX_RANK) throw new RangeError(`webgpu strided: rank > ${MAX_RANK}`);
    this.need16(dtype);
    const n = p.shape.reduce((x, y) => x * y, 1);
    const o = this.out(n, dtype);
    const { offset, shape, strides } = p;
    const params = stridedParams({ n, rank: shape.length, offset, shape, strides });
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
    this.engine.run(castKernel(from, to), [this.buf(a), o.buffer], nParams({ n }), groups1d(n));
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
    params = true,
  ): { dx: Storage; dgamma: Storage | null; dbeta: Storage | null } {
    const dx = this.out(rows * cols), stats = this.out(2 * rows);
    this.engine.run(
      layerNormBackwardRowsKernel(),
      [this.buf(x), this.buf(gamma), this.buf(dy), dx.buffer, stats.buffer],
      layerNormParams({ rows, cols, eps }),
      rowGroups(rows),
    );
    if (!params) {
      this.free(stats);
      return { dx, dgamma: null, dbeta: null };
    }
    // Column sums over many rows run in chunks of rows, then sum the chunks (see reduce()).
    const S = reduceChunks(rows, cols), chunk = Math.ceil(rows / S);
    const pg = this.out(S * cols), pb = this.out(S * cols);
    this.engine.run(
      layerNormBackwardColsKernel(),
      [this.buf(x), this.buf(dy), stats.buffer, pg.buffer, pb.buffer],
      layerNormBackwardColsParams({ rows, cols, chunk, chunks: S }),
      groups1d(S * cols),
    );
    this.free(stats);
    if (S === 1) return { dx, dgamma: pg, dbeta: pb };
    const dgamma = this.reduce("sum", pg, 1, S, cols), dbeta = this.reduce("sum", pb, 1, S, cols);
    this.free(pg);
    this.free(pb);
    return { dx, dgamma, dbeta };
  }
  /** See {@link Backend.embeddingBackward}: a counting sort by id, then sums per entry. */
  embeddingBackward(
    ids: Storage,
    dy: Storage,
    n: number,
    V: number,
    C: number,
    rows?: EmbeddingRows,
  ): Storage {
    const o = this.out(V * C);
    const k = embeddingBackwardKernels();
    const cnt = this.out(V, "i32"),
      off = this.out(V + 1, "i32"),
      pos = this.out(Math.max(1, n), "i32");
    const p = embeddingParams({ n, V, C, start: rows?.start ?? 0 });
    this.engine.run(k.zero, [cnt.buffer], p, groups1d(V));
    this.engine.run(k.count, [this.buf(ids), cnt.buffer], p, groups1d(n));
    this.engine.run(k.scan, [cnt.buffer, off.buffer], p, [1, 1, 1]);
    this.engine.run(k.scatter, [this.buf(ids), off.buffer, pos.buffer], p, groups1d(n));
    this.engine.run(k.gather, [off.buffer, pos.buffer, this.buf(dy), o.buffer], p, groups1d(V * C));
    for (const b of [cnt, off, pos]) this.free(b);
    return o;
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
    const o = this.out(rows * V);
    this.engine.run(
      crossEntropyBackwardKernel(),
      [this.buf(logits), this.buf(targets), this.buf(g), o.buffer],
      crossEntropyParams({ rows, V, ignore }),
      rowGroups(rows),
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
      unnarrowParams({ outer, len, inner, full, start }),
      groups1d(n),
    );
    return o;
  }
  /**
   * Which fused attention kernels run: `"auto"` (default) the tiled FlashAttention-2-style ones
   * (`kernels/attention_tiled.ts`) when the head width's tiles fit the workgroup memory, else the
   * row kernels (`kernels/attention.ts`, a query or key row per thread); `"rows"` always the row
   * kernels (for comparisons). Starts as `LORALAB_ATTENTION_KERNELS` when that is set.
   */
  attentionKernels: "auto" | "rows" = attentionKernelsFromEnv();
  /** Workgroup bytes the tiled attention may use (default: the device's limit; tests lower it). */
  attentionTileBytes: number | null = null;
  /**
   * Threads per workgroup of the tiled attention (default: 64 on a software adapter, where it
   * measured 10–15 % faster, 128 on a GPU, where a workgroup of 64 with ≈ 40 KiB of workgroup
   * memory would leave few threads per core).
   */
  attentionThreads: 64 | 128 | null = null;
  /**
   * Where the quantized kernels keep a 4-bit format's code table (see `WgslOptions` in
   * `lib/quant/formats/format.ts`); null: by adapter, {@link codeTable}.
   */
  quantCodeTable: "private" | "workgroup" | null = null;
  /**
   * The code table's place: {@link quantCodeTable} when set, else a private array on a software
   * adapter (on lavapipe the workgroup copy's extra barrier made M = 1 at 16384 × 2048 1.7×
   * (nf4) to 5.5× (nf4+dq) slower) and workgroup memory on a GPU (as bitsandbytes' kernels: no per-thread copy that a
   * code-indexed look-up could send to local memory).
   */
  codeTable(): "private" | "workgroup" {
    return this.quantCodeTable ?? (this.engine.isSoftware ? "private" : "workgroup");
  }
  /**
   * The tiled attention's tiles for head width `hd`, or null when the row kernels run: with
   * `kernels` (`AttentionParams.kernels`) that family, else {@link attentionKernels}' choice.
   */
  attentionTiles(hd: number, kernels?: "tiled" | "rows"): AttentionTileConfig | null {
    if ((kernels ?? this.attentionKernels) === "rows") return null;
    const max = this.engine.device.limits.maxComputeWorkgroupStorageSize;
    const threads = this.attentionThreads ?? (this.engine.isSoftware ? 64 : 128);
    return attentionTileConfig(hd, Math.min(max, this.attentionTileBytes ?? max), threads);
  }
  /**
   * See {@link Backend.attentionKernelFamilies}: `["tiled", "rows"]` when the tiles of `hd` fit
   * the workgroup memory, else `["rows"]`; only `["rows"]` while {@link attentionKernels} is
   * `"rows"`; none past {@link attentionMaxHeadDim}.
   */
  attentionKernelFamilies(hd: number): readonly ("tiled" | "rows")[] {
    if (hd > ATT_MAX_HD) return [];
    return this.attentionTiles(hd) ? ["tiled", "rows"] : ["rows"];
  }
  /** See {@link Backend.attentionMaxHeadDim}: the fused kernels hold a few head rows per thread. */
  readonly attentionMaxHeadDim: number = ATT_MAX_HD;
  /**
   * See {@link Backend.attention}: one dispatch, of the family `p.kernels` names (default
   * {@link attentionTiles}' choice): tiled (`kernels/attention_tiled.ts`) or rows
   * (`kernels/attention.ts`).
   */
  attention(
    q: Storage,
    k: Storage,
    v: Storage,
    p: AttentionParams,
  ): { y: Storage; lse: Storage } {
    if (p.hd > ATT_MAX_HD) {
      throw new RangeError(`webgpu attention: head width ${p.hd} > ${ATT_MAX_HD}`);
    }
    const y = this.out(p.B * p.T * p.nHead * p.hd);
    const lse = this.out(p.B * p.nHead * p.T);
    const cfg = this.attentionTiles(p.hd, p.kernels);
    this.engine.run(
      cfg ? attentionTiledForwardKernel(p.hd, cfg) : attentionForwardKernel(p.hd),
      [this.buf(q), this.buf(k), this.buf(v), y.buffer, lse.buffer],
      attentionParams(p),
      attentionGroups(p, cfg ? cfg.fwd.br : ATT_ROWS),
    );
    return { y, lse };
  }
  /** See {@link Backend.attentionBackward}: two dispatches (dq and D, then dk and dv). */
  attentionBackward(
    q: Storage,
    k: Storage,
    v: Storage,
    y: Storage,
    lse: Storage,
    dy: Storage,
    p: AttentionParams,
  ): Storage {
    const dqkv = this.out(p.B * p.T * 3 * p.nHead * p.hd);
    const D = this.out(p.B * p.nHead * p.T);
    const cfg = this.attentionTiles(p.hd, p.kernels);
    const [bq, bk, bv] = [this.buf(q), this.buf(k), this.buf(v)];
    this.engine.run(
      cfg ? attentionTiledBackwardQKernel(p.hd, cfg) : attentionBackwardQKernel(p.hd),
      [bq, bk, bv, this.buf(y), this.buf(dy), this.buf(lse), dqkv.buffer, D.buffer],
      attentionParams(p),
      attentionGroups(p, cfg ? cfg.dq.br : ATT_ROWS),
    );
    this.engine.run(
      cfg ? attentionTiledBackwardKVKernel(p.hd, cfg) : attentionBackwardKVKernel(p.hd),
      [bq, bk, bv, this.buf(dy), this.buf(lse), D.buffer, dqkv.buffer],
      attentionParams(p),
      attentionGroups(p, cfg ? cfg.dkv.bc : ATT_ROWS),
    );
    this.engine.release(D.buffer);
    return dqkv;
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
    this.engine.run(
      adamwKernel(),
      [this.buf(p), this.buf(g), this.buf(m), this.buf(v), gscale ? this.buf(gscale) : this.dummy],
      adamwParams({ ...h, n, scaled: !!gscale }),
      groups1d(n),
    );
  }
  /**
   * See {@link Backend.adamwMany}: up to {@link ADAMW_MANY_MAX} tensors per dispatch (fewer when
   * the device binds fewer than 4 per tensor + 1 storage buffers).
   */
  adamwMany(items: AdamItem[], h: AdamParams, gscale?: Storage | null): void {
    const lim = this.engine.device.limits.maxStorageBuffersPerShaderStage;
    const per = Math.min(ADAMW_MANY_MAX, Math.floor((lim - 1) / 4));
    if (per < 2) {
      for (const it of items) {
        this.adamw(it.p, it.g, it.m, it.v, it.n, { ...h, weightDecay: it.weightDecay }, gscale);
      }
      return;
    }
    for (let c = 0; c < items.length; c += per) {
      const chunk = items.slice(c, c + per);
      const offs = [0];
      for (const it of chunk) offs.push(offs[offs.length - 1] + it.n);
      const bufs = [gscale ? this.buf(gscale) : this.dummy];
      for (const it of chunk) {
        bufs.push(this.buf(it.p), this.buf(it.g), this.buf(it.m), this.buf(it.v));
      }
      this.engine.run(
        adamwManyKernel(chunk.length),
        bufs,
        adamwManyParams({
          ...h,
          scaled: !!gscale,
          offsets: offs,
          weightDecays: chunk.map((it) => it.weightDecay),
        }),
        groups1d(offs[offs.length - 1]),
      );
    }
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
    this.engine.run(
      sgdKernel(),
      [this.buf(p), this.buf(g), this.buf(buf), gscale ? this.buf(gscale) : this.dummy],
      sgdParams({ n, lr, momentum, weightDecay, scaled: !!gscale }),
      groups1d(n),
    );
  }
  /**
   * See {@link Backend.clipFactor}: one `sumsq` dispatch per gradient (every partial written, so
   * the buffer needs no clearing), then one `clip_factor`.
   */
  clipFactor(grads: { s: Storage; n: number }[], maxNorm: number): Storage {
    const partials = this.out(grads.length * NORM_PARTIALS);
    grads.forEach((g, slot) =>
      this.engine.run(
        sumSquaresKernel(),
        [this.buf(g.s), partials.buffer],
        sumSquaresParams({ n: g.n, slot }),
        [NORM_PARTIALS, 1, 1],
      )
    );
    const o = this.out(2);
    this.engine.run(
      clipFactorKernel(),
      [partials.buffer, o.buffer],
      clipFactorParams({ count: grads.length * NORM_PARTIALS, maxNorm }),
      [1, 1, 1],
    );
    this.free(partials);
    return o;
  }
}
