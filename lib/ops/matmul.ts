/**
 * Matrix products: 2-D and batched, either operand transposed, optional bias.
 *
 * @module
 */

import { record } from "../autograd/record.ts";
import type { MatmulParams } from "../backend/backend.ts";
import { fmtShape, numel, scope, Tensor } from "../tensor.ts";
import { add } from "./elementwise.ts";
import { sum } from "./reduce.ts";
import { matmulChunked } from "./split.ts";
import { needDtype, sameBackend } from "./util.ts";

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Use the transpose of `a`'s last two dims. */
  transA?: boolean;
  /** Use the transpose of `b`'s last two dims (`x · Wᵀ` for a [out, in] weight). */
  transB?: boolean;
  /** Bias [N] added to every output row (same dtype as the operands). */
  bias?: Tensor;
  /**
   * f16 operands only: accumulate in f32 (default: exact products, one f32 rounding per step) or
   * in f16 (faster on some GPUs, each partial sum rounded to f16: much less accurate).
   */
  accumulate?: "f32" | "f16";
  /** f16 operands only: output dtype, f16 (default) or f32. */
  outDtype?: "f16" | "f32";
}

/**
 * `op(a) · op(b) (+ bias)`. a: [..., M, K] (or [..., K, M] with transA), b: [..., K, N] (or
 * [..., N, K] with transB). Batch dims must be equal, or one operand must be 2-D (it is then
 * shared by every batch). Result: [...batch, M, N].
 *
 * Operands are both f32, or both f16 (then the bias too; see {@link MatmulOptions.accumulate}
 * and {@link MatmulOptions.outDtype}). f16 runs the WGSL f16 kernel on WebGPU (which needs
 * `shader-f16`) and its plain-TypeScript twin on the CPU backend (exact twin, slow loops); f16
 * products are not differentiable (backward through one throws).
 *
 * @example
 * ```ts
 * const y = matmul(x, w, { transB: true, bias: b }); // x: [B, T, in], w: [out, in] -> [B, T, out]
 * ```
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const bias = opts.bias;
  if (b.chunks) {
    if (transA || a.chunks) {
      throw new RangeError(
        `matmul: ${fmtShape(b.shape)} is stored in row chunks; it takes only an untransposed ` +
          "whole left operand",
      );
    }
    if (!bias) return matmulChunked(a, b, transB);
    // The bias is added after the chunked product (its gradient is the broadcast add's).
    return scope(() => add(matmulChunked(a, b, transB), bias));
  }
  sameBackend("matmul", a, b, ...(bias ? [bias] : []));
  const sa = `${fmtShape(a.shape)}${transA ? "ᵀ" : ""}`;
  const sb = `${fmtShape(b.shape)}${transB ? "ᵀ" : ""}`;
  const dtype = checkDtypes(a, b, bias, opts, `matmul: ${sa} @ ${sb}`);
  if (a.ndim < 2 || b.ndim < 2) {
    throw new RangeError(`matmul: ${sa} @ ${sb}: operands need at least 2 dims`);
  }
  const [ar, ac] = a.shape.slice(-2), [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar, Ka = transA ? ar : ac;
  const Kb = transB ? bc : br, N = transB ? br : bc;
  if (Ka !== Kb) throw new RangeError(`matmul: ${sa} @ ${sb}: inner dims ${Ka} and ${Kb} differ`);
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  let batchShape: readonly number[];
  if (batchA.length && batchB.length) {
    if (fmtShape(batchA) !== fmtShape(batchB)) {
      throw new RangeError(
        `matmul: ${sa} @ ${sb}: batch dims ${fmtShape(batchA)} and ${fmtShape(batchB)} differ`,
      );
    }
    batchShape = batchA;
  } else batchShape = batchA.length ? batchA : batchB;
  if (bias) {
    if (bias.ndim !== 1 || bias.shape[0] !== N) {
      throw new RangeError(`matmul: bias ${fmtShape(bias.shape)} should be [${N}]`);
    }
  }
  const batch = numel(batchShape);
  const outShape = [...batchShape, M, N];
  const dev = a.backend;
  const bs = bias ? bias.storage : null;
  const inputs = bias ? [a, b, bias] : [a, b];
  const p: MatmulParams = {
    batch,
    M,
    N,
    K: Ka,
    transA,
    transB,
    strideA: batchA.length ? M * Ka : 0,
    strideB: batchB.length ? Ka * N : 0,
  };
  if (dtype === "f16") {
    const out = opts.outDtype ?? "f16";
    const s = dev.matmul(a.storage, b.storage, bs, {
      ...p,
      dtype: "f16",
      accumDtype: opts.accumulate ?? "f32",
      outDtype: out,
    });
    // Recorded so that a gradient path through it fails loudly instead of being cut silently.
    return record(new Tensor(dev, s, outShape, out), inputs, () => {
      throw new Error(`autograd: matmul of f16 operands is not differentiable (cast to f32)`);
    });
  }
  // A batched, untransposed `a` times a shared 2-D `b` is one big 2-D product.
  if (batchA.length && !batchB.length && !transA) {
    const s = dev.matmul(a.storage, b.storage, bs, {
      batch: 1,
      M: batch * M,
      N,
      K: Ka,
      transA,
      transB,
      strideA: 0,
      strideB: 0,
    });
    return record(new Tensor(dev, s, outShape, "f32"), inputs, (g, needs) =>
      scope(() => {
        // Rows of all batches form one [batch·M, K] matrix, so dB needs no batch sum.
        const a2 = a.reshape([-1, Ka]), g2 = g.reshape([-1, N]);
        return [
          needs[0] ? matmul(g, b, { transB: !transB }) : null,
          needs[1]
            ? (transB ? matmul(g2, a2, { transA: true }) : matmul(a2, g2, { transA: true }))
            : null,
          needs[2] ? sum(g2, 0) : null,
        ];
      }));
  }
  const s = dev.matmul(a.storage, b.storage, bs, p);
  return record(new Tensor(dev, s, outShape, "f32"), inputs, (g, needs) =>
    scope(() => [
      needs[0]
        ? sumToRank(
          transA
            ? matmul(b, g, { transA: transB, transB: true })
            : matmul(g, b, { transB: !transB }),
          a,
        )
        : null,
      needs[1]
        ? sumToRank(
          transB
            ? matmul(g, a, { transA: true, transB: transA })
            : matmul(a, g, { transA: !transA }),
          b,
        )
        : null,
      needs[2] ? sum(g.reshape([-1, N]), 0) : null,
    ]));
}

/**
 * Checks the operands' dtypes (f32, f32 or f16, f16; the bias the same) and the f16-only
 * options; returns the operands' dtype.
 */
function checkDtypes(
  a: Tensor,
  b: Tensor,
  bias: Tensor | undefined,
  opts: MatmulOptions,
  what: string,
): "f32" | "f16" {
  if (a.dtype !== b.dtype) {
    throw new TypeError(
      `${what}: a is ${a.dtype} but b is ${b.dtype}; both operands need the same dtype ` +
        `(f32 or f16; cast one)`,
    );
  }
  if (a.dtype !== "f32" && a.dtype !== "f16") {
    throw new TypeError(`${what}: operands are ${a.dtype}; matmul takes f32 or f16`);
  }
  if (bias && bias.dtype !== a.dtype) {
    throw new TypeError(`${what}: bias is ${bias.dtype} but the operands are ${a.dtype}`);
  }
  if (a.dtype === "f32" && (opts.accumulate !== undefined || opts.outDtype !== undefined)) {
    throw new TypeError(
      `${what}: accumulate and outDtype apply to f16 operands only (these are f32)`,
    );
  }
  if (opts.accumulate !== undefined && opts.accumulate !== "f32" && opts.accumulate !== "f16") {
    throw new TypeError(`${what}: accumulate must be "f32" or "f16", got ${opts.accumulate}`);
  }
  if (opts.outDtype !== undefined && opts.outDtype !== "f32" && opts.outDtype !== "f16") {
    throw new TypeError(`${what}: outDtype must be "f16" or "f32", got ${opts.outDtype}`);
  }
  return a.dtype;
}

/** Sums a batched gradient [..., r, c] over its batch dims when the operand was a shared 2-D one. */
function sumToRank(g: Tensor, like: Tensor): Tensor {
  if (g.ndim === like.ndim) return g;
  const [r, c] = g.shape.slice(-2);
  return sum(g.reshape([-1, r, c]), 0);
}

/**
 * `y + alpha · h · wᵀ` (a LoRA update on a base layer's output), with y: [..., N], h: [..., r],
 * w: [N, r]: one matmul that accumulates into y's storage in place (`alpha` and `accumulate` of
 * the backend matmul: a WGSL dispatch, or OpenBLAS `sgemm` with β = 1 on the CPU), and two with
 * alpha folded in backwards, instead of matmul + scale + add and their backwards. **y's values are
 * overwritten**, so y must be a fresh output that nothing reads afterwards (a linear layer's
 * backward only needs its output's gradient, which passes through unchanged).
 */
export function addMatmulInPlace(y: Tensor, h: Tensor, w: Tensor, alpha: number): Tensor {
  sameBackend("addMatmulInPlace", y, h, w);
  for (const [n, t] of [["y", y], ["h", h], ["w", w]] as const) {
    needDtype("addMatmulInPlace", t, "f32", n);
  }
  const N = y.shape[y.ndim - 1], r = h.shape[h.ndim - 1];
  if (w.ndim !== 2 || w.shape[0] !== N || w.shape[1] !== r || y.size / N !== h.size / r) {
    throw new RangeError(
      `addMatmulInPlace: y ${fmtShape(y.shape)}, h ${fmtShape(h.shape)} and w ${
        fmtShape(w.shape)
      } do not fit y + h·wᵀ`,
    );
  }
  const dev = y.backend;
  const rows = y.size / N;
  const mm = (M: number, n: number, K: number, transA: boolean, transB: boolean) => ({
    batch: 1,
    M,
    N: n,
    K,
    transA,
    transB,
    strideA: 0,
    strideB: 0,
    alpha,
  });
  const out = y.alias();
  dev.matmul(
    h.storage,
    w.storage,
    null,
    { ...mm(rows, N, r, false, true), accumulate: true },
    out.storage,
  );
  return record(out, [y, h, w], (g, needs) => {
    const gs = g.storage;
    return [
      needs[0] ? g : null,
      // dh = alpha · g · w: [rows, N] · [N, r]
      needs[1]
        ? new Tensor(
          dev,
          dev.matmul(gs, w.storage, null, mm(rows, r, N, false, false)),
          h.shape,
          "f32",
        )
        : null,
      // dw = alpha · gᵀ · h: [N, rows] · [rows, r]
      needs[2]
        ? new Tensor(
          dev,
          dev.matmul(gs, h.storage, null, mm(N, r, rows, true, false)),
          [N, r],
          "f32",
        )
        : null,
    ];
  });
}
