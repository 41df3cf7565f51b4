/**
 * The language-model loss from the final hidden states: logits = head(h), then the mean
 * next-token cross-entropy. When the logits [B·T, V] would exceed the backend's largest buffer
 * (`Backend.maxStorageBytes`: 128 MiB on lavapipe, where GPT-2's 50,257 logits of 1,024 tokens
 * take 206 MB), the rows go through the head and the per-row losses in chunks that fit, and the
 * per-row losses are joined before the one reduction: the same per-row values and the same mean
 * as in one piece. Autograd sees ordinary ops (narrow, the head, crossEntropyRows, concat), so
 * the backward is chunked alike.
 *
 * @module
 */

import { scale } from "../ops/elementwise.ts";
import { crossEntropy, type CrossEntropyOptions, crossEntropyRows } from "../ops/nn.ts";
import { mean, sum } from "../ops/reduce.ts";
import { concat, narrow } from "../ops/shape.ts";
import type { Tensor } from "../tensor.ts";

/**
 * Mean next-token cross-entropy of `head(h)` against `targets` (see `crossEntropy` for
 * `options.count` and the -100 mask), in row chunks whose logits fit `maxBytes`.
 *
 * @param h final hidden states [B, T, C]
 * @param head h rows [n, C] → logits [n, V] (and [B, T, C] → [B, T, V])
 * @param V vocabulary size (columns of the logits)
 * @param targets i32 [B, T]
 * @param maxBytes the largest buffer (default: h's backend's `maxStorageBytes`)
 * @returns scalar []
 */
export function lmLoss(
  h: Tensor,
  head: (x: Tensor) => Tensor,
  V: number,
  targets: Tensor,
  options: CrossEntropyOptions = {},
  maxBytes: number = h.backend.maxStorageBytes,
): Tensor {
  const rows = h.size / h.shape[h.ndim - 1]; // B·T
  const per = Math.floor(maxBytes / (4 * V)); // logit rows per chunk
  if (rows <= per) return crossEntropy(head(h), targets, options);
  if (per < 1) {
    throw new RangeError(`lmLoss: one row of ${V} logits is over the largest buffer`);
  }
  const count = options.count;
  const masked = count !== undefined && count !== targets.size;
  const h2 = h.reshape([rows, h.shape[h.ndim - 1]]), t2 = targets.reshape([rows]);
  let all: Tensor | null = null; // per-row losses [rows so far]
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    const part = crossEntropyRows(head(narrow(h2, 0, r0, n)), narrow(t2, 0, r0, n), {
      ignore: masked,
    }); // [n]
    all = all ? concat(all, part, 0) : part;
  }
  // The one reduction, as crossEntropy does it.
  if (!masked) return mean(all!, 0);
  return scale(sum(all!, 0), count! > 0 ? 1 / count! : 0);
}
