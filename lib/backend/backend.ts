/**
 * The Backend interface: the raw compute contract that both twins (CPU and WebGPU) implement.
 *
 * A backend works on opaque {@link Storage} handles and explicit sizes; all shape logic,
 * broadcasting rules and error messages live one level up, in `lib/ops/`. Every method returns a
 * fresh storage that the caller owns (and later hands back with {@link Backend.free}).
 *
 * @module
 */

/** One tensor of a multi-tensor AdamW step ({@link Backend.adamwMany}). */
export interface AdamItem {
  /** Parameter (updated in place). */
  p: Storage;
  /** Gradient. */
  g: Storage;
  /** First moment (updated in place). */
  m: Storage;
  /** Second moment (updated in place). */
  v: Storage;
  /** Elements. */
  n: number;
  /** Decoupled weight decay of this tensor. */
  weightDecay: number;
}

/** Partial sums per gradient in {@link Backend.clipFactor} (workgroups of the WGSL kernel). */
export const NORM_PARTIALS = 32;

/** Element types a tensor may hold. `f16` needs `shader-f16` on WebGPU. */
export type DType = "f32" | "f16" | "i32";

/** The typed array that holds host copies of each dtype. */
export type HostArray = Float32Array | Float16Array | Int32Array;

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4 };

/** An opaque handle to device memory (a typed array on the CPU, a GPUBuffer on WebGPU). */
export interface Storage {
  /** Which backend made it; ops refuse to mix storages of different backends. */
  readonly backendId: number;
}

/** Which rows of a bigger table an {@link Backend.embedding} table holds (a row chunk). */
export interface EmbeddingRows {
  /** Id of the chunk's first row. */
  start: number;
  /** Rows of the whole table. */
  total: number;
}

/** Elementwise binary ops, with numpy broadcasting. */
export type BinaryOp = "add" | "sub" | "mul" | "div";

/**
 * Elementwise unary ops. `scale` multiplies by `alpha`; `geluGrad` is d gelu(x)/dx and `step` is
 * 1 where x > 0 else 0 (the derivative of relu); `silu` is x·σ(x) (Llama's activation) and
 * `siluGrad` its derivative σ(x)·(1 + x·(1 − σ(x))), σ computed without overflow.
 */
export type UnaryOp =
  | "exp"
  | "log"
  | "gelu"
  | "neg"
  | "sqrt"
  | "scale"
  | "relu"
  | "geluGrad"
  | "step"
  | "silu"
  | "siluGrad";

/**
 * Hyper-parameters of one AdamW step (bias corrections precomputed: 1 - β^t). `1 - β1` and
 * `1 - β2` are their own parameters, computed in float64 before any rounding to f32 (as
 * torch.optim.AdamW does: its Python floats are subtracted in double): 1 - f32(0.999) is
 * 1.3e-5 (relative) off 1 - 0.999.
 */
export interface AdamParams {
  /** Learning rate. */
  lr: number;
  /** First-moment decay β1. */
  beta1: number;
  /** Second-moment decay β2. */
  beta2: number;
  /** 1 - β1, computed in float64. */
  oneMinusBeta1: number;
  /** 1 - β2, computed in float64. */
  oneMinusBeta2: number;
  /** Denominator epsilon. */
  eps: number;
  /** Decoupled weight decay. */
  weightDecay: number;
  /** 1 - β1^t. */
  biasCorrection1: number;
  /** 1 - β2^t. */
  biasCorrection2: number;
}

/** Reductions over one axis. */
export type ReduceOp = "sum" | "mean" | "max";

/**
 * One (possibly batched) matrix product `out[b] = op(A[b]) · op(B[b]) (+ bias)`.
 * `op(A)` is [M, K] and `op(B)` is [K, N]; with `transA` A is stored [K, M], with `transB` B is
 * stored [N, K]. A batch stride of 0 broadcasts a 2-D operand over the batch.
 */
export interface MatmulParams {
  /** Number of output matrices. */
  batch: number;
  /** Rows of op(A) and of the output. */
  M: number;
  /** Columns of op(B) and of the output. */
  N: number;
  /** Inner dimension. */
  K: number;
  /** A is stored [K, M] instead of [M, K]. */
  transA: boolean;
  /** B is stored [N, K] instead of [K, N]. */
  transB: boolean;
  /** Elements between consecutive A matrices (0 = broadcast). */
  strideA: number;
  /** Elements between consecutive B matrices (0 = broadcast). */
  strideB: number;
  /** Factor of the product: `alpha·op(A)·op(B)` (default 1). */
  alpha?: number;
  /**
   * Add the previous contents of the output storage passed to {@link Backend.matmul} (default
   * false): `out = alpha·op(A)·op(B) + bias + out`.
   */
  accumulate?: boolean;
  /** dtype of A, B and the bias: `"f16"` needs `hasF16` (default `"f32"`). */
  dtype?: "f32" | "f16";
  /** f16 operands only: accumulation type (default `"f32"`). */
  accumDtype?: "f32" | "f16";
  /** f16 operands only: output type (default `"f16"`); `out`, `alpha` and `accumulate` are f32-only. */
  outDtype?: "f16" | "f32";
}

/**
 * Layout of a fused causal self-attention: q, k, v rows of B·T tokens, each holding nHead heads
 * of width hd, at `off + (b·T + t)·rowStride + h·hd` (a packed [B, T, 3C] c_attn output has
 * offsets 0, C, 2C and row stride 3C; separate [B, T, C] tensors have offsets 0 and stride C).
 */
export interface AttentionParams {
  /** Batch. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Heads. */
  nHead: number;
  /** Head width. */
  hd: number;
  /** Element offset of q within its storage. */
  qOff: number;
  /** Element offset of k within its storage. */
  kOff: number;
  /** Element offset of v within its storage. */
  vOff: number;
  /** Elements between consecutive token rows of q, k and v. */
  rowStride: number;
  /** Score scale, usually 1/√hd. */
  scale: number;
  /**
   * Which fused kernel family runs (one of {@link Backend.attentionKernelFamilies}; the caller's
   * per-shape choice, see `lib/ops/attention_select.ts`). Default: the backend's own.
   */
  kernels?: "tiled" | "rows";
}

/**
 * A strided gather `out[i] = a[offset + Σ_k idx_k(i) · strides[k]]`, where `idx(i)` unravels the
 * flat output index over `shape`. It serves permute, narrow (slicing) and contiguous copies.
 */
export interface StridedParams {
  /** Output shape (row-major). */
  shape: number[];
  /** Input element stride for each output axis. */
  strides: number[];
  /** Input element offset of the first output element. */
  offset: number;
}

/** The compute contract shared by the CPU reference and the WebGPU backend. */
export interface Backend {
  /** `"cpu"` or `"webgpu"`. */
  readonly kind: "cpu" | "webgpu";
  /** Unique id, stamped on every storage this backend makes. */
  readonly id: number;
  /** Human-readable description: the adapter name for WebGPU. */
  readonly description: string;
  /** Whether `f16` storage and arithmetic are available. */
  readonly hasF16: boolean;
  /**
   * Largest storage in bytes (WebGPU: the adapter's `maxStorageBufferBindingSize`; the CPU:
   * `Infinity`, bounded only by memory). Checked before big work so that a run too large for the
   * adapter fails with one clear error instead of a kernel error mid-step.
   */
  readonly maxStorageBytes: number;
  /**
   * Whether a training step should wait for the device once, at its end (a GPU: losses stay on
   * the device and clipping runs in the optimizer kernels), rather than read each loss as it goes
   * (the CPU, where a read costs nothing).
   */
  readonly oneWaitPerStep: boolean;
  /**
   * Optional: times the kernel variants on the product shapes seen so far and keeps the fastest
   * (results are bit-identical; only speed changes). Returns the number of shapes tuned, or null
   * when this device is not worth tuning (a software adapter). A run calls it after its first step.
   */
  tuneSeenShapes?(): Promise<number | null>;
  /** Optional: bytes of device memory this backend holds now and at most so far (a GPU). */
  deviceMemory?(): { live: number; peak: number };
  /**
   * Optional: whether this is a CPU emulating a GPU (lavapipe), where timings would mislead
   * tuning. Absent: false.
   */
  readonly isSoftware?: boolean;
  /**
   * Optional: reads several storages back with one wait (one round trip for all of them).
   * Without it, callers read each with {@link Backend.read}.
   */
  readMany?(items: readonly { s: Storage; dtype: DType; n: number }[]): Promise<HostArray[]>;

  /** Copies host data into a new storage. */
  upload(dtype: DType, data: HostArray): Storage;
  /** A new zero-filled storage of `n` elements. */
  zeros(dtype: DType, n: number): Storage;
  /** Copies `n` elements of a storage back to the host. */
  read(s: Storage, dtype: DType, n: number): Promise<HostArray>;
  /** Overwrites a storage's first `data.length` elements in place (parameters, on restore). */
  write(s: Storage, data: HostArray): void;
  /** Returns a storage to the backend (pool or garbage collector). */
  free(s: Storage): void;
  /** Submits pending work and waits for it (no-op on the CPU). */
  sync(): Promise<void>;

  /**
   * `out = alpha · op(A) · op(B) + bias (+ out)`; out: [batch, M, N], bias: [N] or null. With
   * `out` given, the result is written into it (it must hold batch·M·N elements and be none of
   * a, b, bias) and it is returned; `p.accumulate` adds its previous contents and requires it.
   * Otherwise a new storage is returned.
   */
  matmul(
    a: Storage,
    b: Storage,
    bias: Storage | null,
    p: MatmulParams,
    out?: Storage,
  ): Storage;
  /**
   * Broadcasting binary op. `aStrides`/`bStrides` give each input's element stride per output
   * axis (0 on broadcast axes).
   */
  binary(
    op: BinaryOp,
    a: Storage,
    b: Storage,
    shape: number[],
    aStrides: number[],
    bStrides: number[],
  ): Storage;
  /** Elementwise unary op over `n` elements (`alpha` is the factor of `scale`). */
  unary(op: UnaryOp, a: Storage, n: number, alpha: number): Storage;
  /**
   * GELU and its derivative in one pass over `n` elements (optional; the CPU has it, to take
   * each tanh once per training step): y = gelu(x) as {@link Backend.unary} gives it, and
   * dydx = gelu'(x) as `unary("geluGrad")` gives it.
   */
  geluWithGrad?(x: Storage, n: number): { y: Storage; dydx: Storage };
  /** GELU's backward in one pass: dx[i] = g[i] · gelu'(x[i]) over `n` elements. */
  geluBackward(x: Storage, g: Storage, n: number): Storage;
  /**
   * Softmax's backward over [rows, cols]: dx = y · (g − Σ_row g·y), given the forward output y
   * (optional: without it the op composes mul, sum, sub and mul).
   */
  softmaxBackward?(y: Storage, g: Storage, rows: number, cols: number): Storage;
  /**
   * In place `dst[i] += src[i]` for i < n (optional: the tape's gradient accumulation uses it
   * when it owns `dst`, else allocates `dst + src`). Same f32 sums as {@link Backend.binary}'s add.
   */
  accumulate?(dst: Storage, src: Storage, n: number): void;
  /** Reduces a [outer, len, inner] view over its middle axis to [outer, inner]. */
  reduce(op: ReduceOp, a: Storage, outer: number, len: number, inner: number): Storage;
  /**
   * Row softmax (or log-softmax) of a [rows, cols] matrix. With `causal`, row r may only see
   * columns c ≤ r mod cols (square attention blocks); masked entries are 0 (softmax) or -inf
   * (log-softmax).
   */
  softmax(a: Storage, rows: number, cols: number, log: boolean, causal: boolean): Storage;
  /** LayerNorm over the last axis: `(x - mean) / sqrt(var + eps) * gamma + beta`. */
  layerNorm(
    x: Storage,
    gamma: Storage,
    beta: Storage,
    rows: number,
    cols: number,
    eps: number,
  ): Storage;
  /**
   * out[n, :] = table[ids[n], :]; table: [V, C], ids: i32 [n]. With `rows`, the table is the row
   * chunk `rows.start … rows.start + V - 1` of a table of `rows.total` rows: an id of another
   * chunk gives a zero row (an id outside [0, total) is still an error, NaN on WebGPU).
   */
  embedding(
    ids: Storage,
    table: Storage,
    n: number,
    V: number,
    C: number,
    rows?: EmbeddingRows,
  ): Storage;
  /**
   * Per-row cross-entropy `logsumexp(logits[r]) - logits[r, targets[r]]`; out: [rows]. With
   * `ignore`, a row whose target is -100 (PyTorch's `ignore_index`) gives 0.
   */
  crossEntropy(
    logits: Storage,
    targets: Storage,
    rows: number,
    V: number,
    ignore?: boolean,
  ): Storage;
  /** Strided gather (see {@link StridedParams}); keeps the dtype. */
  strided(a: Storage, dtype: DType, p: StridedParams): Storage;
  /** Converts `n` elements between f32 and f16. */
  cast(a: Storage, from: DType, to: DType, n: number): Storage;

  // ---- backward passes and optimizer steps ----
  /**
   * LayerNorm backward: x, dy: [rows, cols] → dx [rows, cols], dgamma [cols], dbeta [cols]. With
   * `params` false (frozen γ and β, as in LoRA) dgamma and dbeta are null and not computed.
   */
  layerNormBackward(
    x: Storage,
    gamma: Storage,
    dy: Storage,
    rows: number,
    cols: number,
    eps: number,
    params?: boolean,
  ): { dx: Storage; dgamma: Storage | null; dbeta: Storage | null };
  /**
   * Embedding backward: dtable [V, C] = Σ over positions n with ids[n] = v of dy[n, :]. With
   * `rows`, the gradient of the row chunk `rows.start … rows.start + V - 1` of a table of
   * `rows.total` rows: row v sums the positions whose id is `rows.start + v`, ids of other
   * chunks add nothing (an id outside [0, total) is an error on the CPU, skipped on WebGPU).
   */
  embeddingBackward(
    ids: Storage,
    dy: Storage,
    n: number,
    V: number,
    C: number,
    rows?: EmbeddingRows,
  ): Storage;
  /**
   * Cross-entropy backward: dlogits[r] = (softmax(logits[r]) - onehot(t_r)) · g[r]. With
   * `ignore`, a row whose target is -100 gets zeros.
   */
  crossEntropyBackward(
    logits: Storage,
    targets: Storage,
    g: Storage,
    rows: number,
    V: number,
    ignore?: boolean,
  ): Storage;
  /** Zeros of [outer, full, inner] with a: [outer, len, inner] placed at `start` (narrow's adjoint). */
  unnarrow(
    a: Storage,
    outer: number,
    len: number,
    inner: number,
    full: number,
    start: number,
  ): Storage;
  /**
   * Fused causal self-attention (optional: backends without it compose the attention from the
   * other ops). Returns y [B, T, nHead·hd] and the log-sum-exp of each score row, [B, nHead, T].
   */
  attention?(q: Storage, k: Storage, v: Storage, p: AttentionParams): { y: Storage; lse: Storage };
  /** With {@link Backend.attention}: the widest head it takes. */
  readonly attentionMaxHeadDim?: number;
  /**
   * With {@link Backend.attention}: the fused kernel families that can run head width `hd`
   * (`AttentionParams.kernels`), the backend's default first. Absent: one family, `"rows"`.
   */
  attentionKernelFamilies?(hd: number): readonly ("tiled" | "rows")[];
  /**
   * Backward of {@link Backend.attention}: the gradient of q, k and v packed as one
   * [B, T, 3·nHead·hd] storage (dq, dk, dv side by side in each row).
   */
  attentionBackward?(
    q: Storage,
    k: Storage,
    v: Storage,
    y: Storage,
    lse: Storage,
    dy: Storage,
    p: AttentionParams,
  ): Storage;
  /**
   * One AdamW step, updating p, m and v in place. With `gscale` (a [norm, factor] storage from
   * {@link Backend.clipFactor}) the gradient is multiplied by its factor first.
   */
  adamw(
    p: Storage,
    g: Storage,
    m: Storage,
    v: Storage,
    n: number,
    h: AdamParams,
    gscale?: Storage | null,
  ): void;
  /**
   * Optional: one AdamW step on several tensors with few dispatches (the same arithmetic per
   * element as {@link Backend.adamw}; each item's own weight decay, `h.weightDecay` unused).
   */
  adamwMany?(items: AdamItem[], h: AdamParams, gscale?: Storage | null): void;
  /** One SGD-with-momentum step, updating p and buf in place (`gscale` as for adamw). */
  sgd(
    p: Storage,
    g: Storage,
    buf: Storage,
    n: number,
    lr: number,
    momentum: number,
    weightDecay: number,
    gscale?: Storage | null,
  ): void;
  /**
   * Global-norm clipping factor of gradients (each `n` elements): a new [2] storage
   * [norm, min(1, maxNorm / (norm + 1e-6))] (PyTorch's clip_grad_norm_ rule), left on the device.
   * Each gradient's squares are summed into {@link NORM_PARTIALS} partials, then all partials.
   */
  clipFactor(grads: { s: Storage; n: number }[], maxNorm: number): Storage;
}

let nextBackendId = 1;
/** Allocates a unique backend id (used by backend constructors). */
export function newBackendId(): number {
  return nextBackendId++;
}
