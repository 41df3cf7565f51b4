/**
 * The ops that take a tensor stored in row chunks (`Tensor.fromChunks`: a tensor larger than the
 * backend's largest storage, such as GPT-2's 154 MB token embedding on an adapter whose buffers
 * stop at 128 MiB): the embedding gather with it as the table, and the matrix product with it as
 * the 2-D right operand (`x · Wᵀ`, the tied output projection, and `g · W`, its input gradient).
 * Each runs chunk by chunk into one output; no gradient flows to the split tensor itself (it is a
 * frozen base weight: LoRA and QLoRA).
 *
 * @module
 */

import { activeTape, record } from "../autograd/record.ts";
import type { Backend, Storage } from "../backend/backend.ts";
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

/** Throws when the active tape would need a gradient of the split tensor `w`. */
function refuseGrad(op: string, w: Tensor): void {
  if (activeTape()?.needsGrad(w)) {
    throw new Error(
      `${op}: ${fmtShape(w.shape)} is stored in ${w.chunks!.length} row chunks (larger than the ` +
        `largest buffer of ${w.backend.description}) and cannot be trained; freeze it ` +
        "(LoRA and QLoRA do) or use a device with larger buffers",
    );
  }
}

/**
 * `embedding(ids, table)` for a table stored in row chunks: each chunk gathers the ids it holds
 * (zeros for the others) and the gathers are summed, so the result is exactly the unsplit one.
 */
export function embeddingChunked(ids: Tensor, table: Tensor): Tensor {
  refuseGrad("embedding", table);
  const chunks = table.chunks!, dev = ids.backend;
  const [V, C] = table.shape, n = ids.size;
  let out: Storage | null = null, start = 0;
  for (const c of chunks) {
    const s = dev.embedding(ids.storage, c.storage, n, c.shape[0], C, { start, total: V });
    out = out ? addInto(dev, out, s, n * C) : s;
    if (out !== s) dev.free(s);
    start += c.shape[0];
  }
  // Recorded so that a gradient path to the table fails loudly instead of being cut silently.
  return record(new Tensor(dev, out!, [...ids.shape, C], "f32"), [ids, table], () => {
    throw new Error(`embedding: no gradient for the split table ${fmtShape(table.shape)}`);
  });
}

/**
 * `matmul(a, w, { transB })` for a 2-D f32 `w` stored in row chunks and an untransposed f32 `a`
 * [..., M, K] (no bias). With `transB` (w: [N, K], the output projection) each chunk gives its
 * columns of the output; without (w: [K, N]) each chunk multiplies its slice of a's columns and
 * the products are summed. The gradient goes to `a` only.
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
  refuseGrad("matmul", w);
  const rows = a.size / K;
  const mm = (M: number, n: number, k: number, accumulate: boolean) => ({
    batch: 1,
    M,
    N: n,
    K: k,
    transA: false,
    transB,
    strideA: 0,
    strideB: 0,
    accumulate,
  });
  let out: Storage | null = null, r0 = 0;
  for (const c of chunks) {
    const rc = c.shape[0];
    if (transB) { // output columns r0 … r0 + rc - 1
      const y = dev.matmul(a.storage, c.storage, null, mm(rows, rc, K, false));
      if (chunks.length === 1) out = y;
      else {
        const p = dev.unnarrow(y, rows, rc, 1, N, r0);
        dev.free(y);
        out = out ? addInto(dev, out, p, rows * N) : p;
        if (out !== p) dev.free(p);
      }
    } else { // inner columns r0 … r0 + rc - 1 of a
      const as = chunks.length === 1
        ? a.storage
        : dev.strided(a.storage, "f32", { shape: [rows, rc], strides: [K, 1], offset: r0 });
      out = dev.matmul(as, c.storage, null, mm(rows, N, rc, out !== null), out ?? undefined);
      if (as !== a.storage) dev.free(as);
    }
    r0 += rc;
  }
  const outShape = [...a.shape.slice(0, -1), N];
  return record(new Tensor(dev, out!, outShape, "f32"), [a, w], (g, needs) => {
    if (needs[1]) throw new Error(`matmul: no gradient for the split ${fmtShape(w.shape)}`);
    return [needs[0] ? matmulChunked(g, w, !transB) : null, null];
  });
}
