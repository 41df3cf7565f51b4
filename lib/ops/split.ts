/**
 * The ops that take a tensor stored in row chunks (`Tensor.fromChunks`: a tensor larger than the
 * backend's largest storage, such as GPT-2's 154 MB token embedding on an adapter whose buffers
 * stop at 128 MiB): the embedding gather with it as the table, and the matrix product with it as
 * the 2-D right operand (`x · Wᵀ`, the tied output projection, and `g · W`, its input gradient).
 * Each runs chunk by chunk into one output.
 *
 * Gradients reach the split tensor chunk by chunk: a tape watches a split tensor as its chunks
 * (`Tape.watch`), these ops record the chunks as their inputs, and each chunk gets the gradient of
 * its rows, computed for that chunk alone (an embedding backward of the ids in its row range; the
 * product's weight gradient restricted to its rows). Every entry is the same sum, in the same
 * order, as the unsplit tensor's gradient, so the chunks' gradients put together equal it.
 *
 * @module
 */

import { record } from "../autograd/record.ts";
import type { Backend, MatmulParams, Storage } from "../backend/backend.ts";
import { fmtShape, Tensor } from "../tensor.ts";
import { needDtype, sameBackend } from "./util.ts";

/** `dst + src` into `dst` where the backend can, else a new storage (dst freed). */
function addInto(dev: Backend, dst: Storage, src: Storage, n: number): Storage {
  if (dev.accumulate) {
    dev.accumulate(dst, src, n);
    return dst;
  }
  const s = dev.binary("add", dst, src, [n], [1], [1]);
  dev.free(dst);
  return s;
}

/**
 * `embedding(ids, table)` for a table stored in row chunks: each chunk gathers the ids it holds
 * (zeros for the others) and the gathers are summed, so the result is exactly the unsplit one.
 * Backward: each chunk gets the embedding backward of the ids in its row range.
 */
export function embeddingChunked(ids: Tensor, table: Tensor): Tensor {
  const chunks = table.chunks!, dev = ids.backend;
  const [V, C] = table.shape, n = ids.size;
  const starts: number[] = [];
  let out: Storage | null = null, start = 0;
  for (const c of chunks) {
    starts.push(start);
    const s = dev.embedding(ids.storage, c.storage, n, c.shape[0], C, { start, total: V });
    out = out ? addInto(dev, out, s, n * C) : s;
    if (out !== s) dev.free(s);
    start += c.shape[0];
  }
  // [...ids.shape, C]; the inputs are the ids and the chunks (the leaves a tape watches).
  return record(new Tensor(dev, out!, [...ids.shape, C], "f32"), [ids, ...chunks], (g, needs) => {
    if (needs[0]) throw new Error("autograd: embedding ids are integers and have no gradient");
    return [
      null,
      ...chunks.map((c, i) => {
        if (!needs[i + 1]) return null;
        const rows = { start: starts[i], total: V };
        const s = dev.embeddingBackward(ids.storage, g.storage, n, c.shape[0], C, rows);
        return new Tensor(dev, s, c.shape, "f32"); // [r_i, C]
      }),
    ];
  });
}

/** The parameters of one untransposed-`a` f32 product [M, k] · op(b) → [M, n]. */
function mmParams(
  M: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  accumulate = false,
): MatmulParams {
  return { batch: 1, M, N: n, K: k, transA, transB, strideA: 0, strideB: 0, accumulate };
}

/** Columns `c0 … c0 + w - 1` of a row-major [rows, cols] f32 matrix, as a new [rows, w] one. */
function columns(dev: Backend, s: Storage, rows: number, cols: number, c0: number, w: number) {
  return dev.strided(s, "f32", { shape: [rows, w], strides: [cols, 1], offset: c0 });
}

/**
 * `matmul(a, w, { transB })` for a 2-D f32 `w` stored in row chunks and an untransposed f32 `a`
 * [..., M, K] (no bias: `matmul` adds one after). With `transB` (w: [N, K], the output projection) each chunk gives its
 * columns of the output; without (w: [K, N]) each chunk multiplies its slice of a's columns and
 * the products are summed. Backward: `a` gets the product of the gradient with `w` (chunked the
 * other way); chunk i, rows r_i … r_i + n_i - 1 of `w`, gets `g[:, its columns]ᵀ · a` (transB)
 * or `a[:, its columns]ᵀ · g`: the rows of the unsplit weight gradient, the same dot products.
 */
export function matmulChunked(a: Tensor, w: Tensor, transB: boolean): Tensor {
  sameBackend("matmul", a, w);
  needDtype("matmul", a, "f32", "a");
  needDtype("matmul", w, "f32", "b");
  const sw = `${fmtShape(w.shape)}${transB ? "ᵀ" : ""}`;
  if (w.ndim !== 2 || a.ndim < 2) {
    throw new RangeError(
      `matmul: ${fmtShape(a.shape)} @ ${sw}: a split right operand must be 2-D (and a ≥ 2-D)`,
    );
  }
  const chunks = w.chunks!, dev = a.backend;
  const [R, Cw] = w.shape;
  const K = transB ? Cw : R, N = transB ? R : Cw;
  if (a.shape[a.ndim - 1] !== K) {
    throw new RangeError(`matmul: ${fmtShape(a.shape)} @ ${sw}: inner dims differ`);
  }
  const rows = a.size / K, one = chunks.length === 1;
  const starts: number[] = [];
  let out: Storage | null = null, r0 = 0;
  for (const c of chunks) {
    const rc = c.shape[0];
    starts.push(r0);
    if (transB) { // output columns r0 … r0 + rc - 1
      const y = dev.matmul(a.storage, c.storage, null, mmParams(rows, rc, K, false, true));
      if (one) out = y;
      else {
        const p = dev.unnarrow(y, rows, rc, 1, N, r0);
        dev.free(y);
        out = out ? addInto(dev, out, p, rows * N) : p;
        if (out !== p) dev.free(p);
      }
    } else { // inner columns r0 … r0 + rc - 1 of a
      const as = one ? a.storage : columns(dev, a.storage, rows, K, r0, rc);
      const p = mmParams(rows, N, rc, false, false, out !== null);
      out = dev.matmul(as, c.storage, null, p, out ?? undefined);
      if (as !== a.storage) dev.free(as);
    }
    r0 += rc;
  }
  const outShape = [...a.shape.slice(0, -1), N];
  // Inputs: a and the chunks (the leaves a tape watches).
  return record(new Tensor(dev, out!, outShape, "f32"), [a, ...chunks], (g, needs) => [
    needs[0] ? matmulChunked(g, w, !transB) : null,
    ...chunks.map((c, i) => {
      if (!needs[i + 1]) return null;
      // transB: dW_i [rc, K] = g[:, r_i …]ᵀ [rc, rows] · a [rows, K];
      // else:   dW_i [rc, N] = a[:, r_i …]ᵀ [rc, rows] · g [rows, N].
      const [src, width, other, cols] = transB ? [g, N, a, K] : [a, K, g, N];
      const rc = c.shape[0];
      const sc = one ? src.storage : columns(dev, src.storage, rows, width, starts[i], rc);
      const s = dev.matmul(sc, other.storage, null, mmParams(rc, cols, rows, true, false));
      if (sc !== src.storage) dev.free(sc);
      return new Tensor(dev, s, c.shape, "f32");
    }),
  ]);
}
