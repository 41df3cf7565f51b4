/**
 * Plain TypeScript kernels of the CPU reference backend: float32 arrays in, float32 arrays out,
 * the simplest loops that are correct. Each has a WGSL twin in `lib/backend/webgpu/`.
 *
 * @module
 */

import type { BinaryOp, MatmulParams, ReduceOp, StridedParams, UnaryOp } from "../backend.ts";
import { blasAvailable, matmulBlas } from "./blas.ts";
import { checkMatmulOut } from "./matmul_out.ts";
import { GELU_C, geluGrad, rowMeanRstd } from "./backward.ts";

/**
 * out[b]: [M, N] = alpha · op(A[b]) · op(B[b]) (+ bias[N]) (+ out[b] when `p.accumulate`). Runs
 * through OpenBLAS `sgemm` when it is available (see `blas.ts`; deterministic run to run), else
 * {@link matmulJs}. With alpha 1 and no accumulation the numerics are those of the plain product.
 * Writes into `out` when given, else into a new array; returns the array written.
 */
export function matmulCpu(
  a: Float32Array,
  b: Float32Array,
  bias: Float32Array | null,
  p: MatmulParams,
  out?: Float32Array,
): Float32Array {
  return blasAvailable() ? matmulBlas(a, b, bias, p, out) : matmulJs(a, b, bias, p, out);
}

/**
 * The readable reference and fallback of {@link matmulCpu}: f32 accumulation in i-k-j order, then
 * the factor alpha (when not 1), the bias, and the previous output (when accumulating). Writes
 * into `out` when given (see `Backend.matmul`), else into a new array.
 */
export function matmulJs(
  a: Float32Array,
  b: Float32Array,
  bias: Float32Array | null,
  p: MatmulParams,
  out?: Float32Array,
): Float32Array {
  const { batch, M, N, K, transA, transB, strideA, strideB } = p;
  const alpha = p.alpha ?? 1, acc = p.accumulate ?? false;
  checkMatmulOut(p, out);
  const dst = out ?? new Float32Array(batch * M * N);
  const row = new Float32Array(N);
  for (let z = 0; z < batch; z++) {
    const a0 = z * strideA, b0 = z * strideB, o0 = z * M * N;
    for (let i = 0; i < M; i++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const aik = transA ? a[a0 + k * M + i] : a[a0 + i * K + k];
        if (transB) {
          for (let j = 0; j < N; j++) row[j] += aik * b[b0 + j * K + k];
        } else {
          const bk = b0 + k * N;
          for (let j = 0; j < N; j++) row[j] += aik * b[bk + j];
        }
      }
      if (alpha !== 1) { for (let j = 0; j < N; j++) row[j] *= alpha; }
      if (bias) { for (let j = 0; j < N; j++) row[j] += bias[j]; }
      if (acc) { for (let j = 0; j < N; j++) row[j] += dst[o0 + i * N + j]; }
      dst.set(row, o0 + i * N);
    }
  }
  return dst;
}

/**
 * Visits the rows of a strided iteration: for each combination of all axes but the last, calls
 * `row(o, offs)` with the flat output offset and each input's element offset (an odometer, so no
 * division per element). The last axis is left to the caller's inner loop.
 */
function forEachRow(
  shape: number[],
  strides: number[][],
  row: (o: number, offs: number[]) => void,
): void {
  const rank = shape.length;
  const inner = rank ? shape[rank - 1] : 1;
  const n = shape.reduce((x, y) => x * y, 1);
  if (n === 0) return;
  const idx = new Array(Math.max(rank - 1, 0)).fill(0);
  const offs = strides.map(() => 0);
  for (let o = 0; o < n; o += inner) {
    row(o, offs);
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < offs.length; k++) offs[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (let k = 0; k < offs.length; k++) offs[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** Broadcasting binary op over `shape`, inputs addressed through their strides. */
export function binaryCpu(
  op: BinaryOp,
  a: Float32Array,
  b: Float32Array,
  shape: number[],
  aStrides: number[],
  bStrides: number[],
): Float32Array {
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Float32Array(n);
  const inner = shape.length ? shape[shape.length - 1] : 1;
  const sa = shape.length ? aStrides[shape.length - 1] : 0;
  const sb = shape.length ? bStrides[shape.length - 1] : 0;
  forEachRow(shape, [aStrides, bStrides], (o, [ia, ib]) => {
    switch (op) {
      case "add":
        for (let j = 0; j < inner; j++) out[o + j] = a[ia + j * sa] + b[ib + j * sb];
        break;
      case "sub":
        for (let j = 0; j < inner; j++) out[o + j] = a[ia + j * sa] - b[ib + j * sb];
        break;
      case "mul":
        for (let j = 0; j < inner; j++) out[o + j] = a[ia + j * sa] * b[ib + j * sb];
        break;
      case "div":
        for (let j = 0; j < inner; j++) out[o + j] = a[ia + j * sa] / b[ib + j * sb];
        break;
    }
  });
  return out;
}

/** σ(x) = 1 / (1 + e^-x) from e^-|x|, which never overflows (the WGSL `sigmoid` twin). */
export function sigmoid(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** GPT-2's tanh approximation of GELU. */
export function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)));
}

/**
 * Elementwise unary op. One loop per op (the op is chosen once, not per element); each computes
 * exactly the expression of its case, so results are bit-identical to a per-element switch.
 */
export function unaryCpu(op: UnaryOp, a: Float32Array, alpha: number): Float32Array {
  const n = a.length;
  const out = new Float32Array(n);
  const al = Math.fround(alpha); // the GPU twin receives alpha as an f32
  switch (op) {
    case "exp":
      for (let i = 0; i < n; i++) out[i] = Math.exp(a[i]);
      break;
    case "log":
      for (let i = 0; i < n; i++) out[i] = Math.log(a[i]);
      break;
    case "gelu":
      for (let i = 0; i < n; i++) out[i] = gelu(a[i]);
      break;
    case "neg":
      for (let i = 0; i < n; i++) out[i] = -a[i];
      break;
    case "sqrt":
      for (let i = 0; i < n; i++) out[i] = Math.sqrt(a[i]);
      break;
    case "relu":
      for (let i = 0; i < n; i++) out[i] = a[i] > 0 ? a[i] : 0;
      break;
    case "scale":
      for (let i = 0; i < n; i++) out[i] = a[i] * al;
      break;
    case "geluGrad":
      for (let i = 0; i < n; i++) out[i] = geluGrad(a[i]);
      break;
    case "step":
      for (let i = 0; i < n; i++) out[i] = a[i] > 0 ? 1 : 0;
      break;
    case "silu":
      for (let i = 0; i < n; i++) out[i] = a[i] * sigmoid(a[i]);
      break;
    case "siluGrad":
      for (let i = 0; i < n; i++) {
        const s = sigmoid(a[i]);
        out[i] = s * (1 + a[i] * (1 - s));
      }
      break;
  }
  return out;
}

/** Reduces a [outer, len, inner] array over its middle axis. */
export function reduceCpu(
  op: ReduceOp,
  a: Float32Array,
  outer: number,
  len: number,
  inner: number,
): Float32Array {
  const out = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = op === "max" ? -Infinity : 0;
      for (let l = 0; l < len; l++) {
        const x = a[(o * len + l) * inner + i];
        acc = op === "max" ? Math.max(acc, x) : acc + x;
      }
      out[o * inner + i] = op === "mean" ? acc / len : acc;
    }
  }
  return out;
}

/** Row softmax / log-softmax with an optional causal mask (see Backend.softmax). */
export function softmaxCpu(
  a: Float32Array,
  rows: number,
  cols: number,
  log: boolean,
  causal: boolean,
): Float32Array {
  const out = new Float32Array(rows * cols);
  const e = new Float64Array(cols); // exp(x - max) of one row, taken once per element
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const last = causal ? r % cols : cols - 1; // last visible column
    let max = -Infinity;
    for (let c = 0; c <= last; c++) max = Math.max(max, a[o + c]);
    let sum = 0;
    for (let c = 0; c <= last; c++) {
      e[c] = Math.exp(a[o + c] - max);
      sum += e[c];
    }
    if (log) {
      const lse = Math.log(sum);
      for (let c = 0; c <= last; c++) out[o + c] = a[o + c] - max - lse;
      for (let c = last + 1; c < cols; c++) out[o + c] = -Infinity;
    } else {
      for (let c = 0; c <= last; c++) out[o + c] = e[c] / sum;
      // masked columns stay 0
    }
  }
  return out;
}

/** LayerNorm over rows of a [rows, cols] matrix (biased variance, as PyTorch). */
export function layerNormCpu(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  rows: number,
  cols: number,
  eps: number,
): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const [mean, rstd] = rowMeanRstd(x, o, cols, eps);
    for (let c = 0; c < cols; c++) out[o + c] = (x[o + c] - mean) * rstd * gamma[c] + beta[c];
  }
  return out;
}

/**
 * Gathers rows of a [V, C] table; an id outside [0, V) is an error. With `start` and `total`, the
 * table holds rows start … start + V - 1 of a table of `total` rows: an id of another row gives
 * zeros, one outside [0, total) is an error.
 */
export function embeddingCpu(
  ids: Int32Array,
  table: Float32Array,
  n: number,
  V: number,
  C: number,
  start = 0,
  total = V,
): Float32Array {
  const out = new Float32Array(n * C);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (!(id >= 0 && id < total)) {
      throw new RangeError(`embedding: id ${id} at ${i} is outside [0, ${total})`);
    }
    const r = id - start;
    if (r < 0 || r >= V) continue; // another chunk's row: zeros
    out.set(table.subarray(r * C, r * C + C), i * C);
  }
  return out;
}

/**
 * Per-row cross-entropy of [rows, V] logits against integer targets. With `ignore`, a target of
 * -100 (PyTorch's `ignore_index`) gives 0; any other target outside [0, V) is an error.
 */
export function crossEntropyCpu(
  logits: Float32Array,
  targets: Int32Array,
  rows: number,
  V: number,
  ignore = false,
): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (ignore && t === -100) continue; // out[r] stays 0
    if (!(t >= 0 && t < V)) {
      throw new RangeError(`crossEntropy: target ${t} at row ${r} is outside [0, ${V})`);
    }
    const o = r * V;
    let max = -Infinity;
    for (let c = 0; c < V; c++) max = Math.max(max, logits[o + c]);
    let sum = 0;
    for (let c = 0; c < V; c++) sum += Math.exp(logits[o + c] - max);
    out[r] = Math.log(sum) + max - logits[o + t];
  }
  return out;
}

/** Strided gather (see StridedParams) for any typed array. */
export function stridedCpu<T extends Float32Array | Float16Array | Int32Array>(
  a: T,
  p: StridedParams,
  make: (n: number) => T,
): T {
  const n = p.shape.reduce((x, y) => x * y, 1);
  const out = make(n);
  const rank = p.shape.length;
  const inner = rank ? p.shape[rank - 1] : 1, st = rank ? p.strides[rank - 1] : 0;
  forEachRow(p.shape, [p.strides], (o, [ia]) => {
    const base = p.offset + ia;
    for (let j = 0; j < inner; j++) out[o + j] = a[base + j * st];
  });
  return out;
}
