/**
 * Evaluation: mean validation loss over in-order windows, and the unigram baseline it is
 * compared against (in bits per token; for a byte tokenizer, bits per byte).
 *
 * @module
 */

import { type Batch, evalBatches } from "../data/batch.ts";
import { countTargets } from "../data/example_batch.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { scope, Tensor } from "../tensor.ts";

/** Batches whose losses stay on the device between read-backs in {@link evaluate}. */
const READ_EVERY = 32;

/**
 * Mean next-token cross-entropy (nats/token) of `model` on `tokens`, over non-overlapping
 * windows of `seqLen`, `batchSize` rows at a time, at most `maxBatches` batches (default all).
 * See {@link evaluateBatches}.
 */
export function evaluate(
  model: CausalLM,
  tokens: Int32Array,
  batchSize: number,
  seqLen: number,
  maxBatches = Infinity,
  onBatch?: (done: number) => void,
): Promise<number> {
  return evaluateBatches(model, evalBatches(tokens, batchSize, seqLen), maxBatches, onBatch);
}

/**
 * Mean next-token cross-entropy (nats/token) of `model` over `batches` (at most `maxBatches`):
 * every target that is not -100 weighs the same, so a batch's mean loss weighs by its number of
 * unmasked targets (all `rows · seqLen` for token windows; instruction batches mask prompts and
 * padding). Batches with no unmasked target are skipped. Losses are read back
 * {@link READ_EVERY} batches at a time (one GPU wait each, not one per batch) and summed in batch
 * order, so the result does not depend on the grouping. Throws when no target counted at all.
 * `onBatch` hears the number of batches done (for progress).
 */
export async function evaluateBatches(
  model: CausalLM,
  batches: Iterable<Batch>,
  maxBatches = Infinity,
  onBatch?: (done: number) => void,
): Promise<number> {
  let total = 0, count = 0, batches_ = 0;
  const pending: { loss: Tensor; weight: number }[] = [];
  const drain = async () => {
    const values = await Tensor.readAll(pending.map((p) => p.loss)); // one wait for the group
    values.forEach((v, i) => total += v[0] * pending[i].weight);
    for (const p of pending) p.loss.dispose();
    pending.length = 0;
  };
  try {
    for (const b of batches) {
      if (batches_++ >= maxBatches) break;
      const { seqLen } = b;
      const rows = b.x.length / seqLen;
      const weight = countTargets(b.y);
      if (weight === 0) continue;
      const loss = scope(() => {
        const x = Tensor.fromArray(b.x, [rows, seqLen], { device: model.device, dtype: "i32" });
        const y = Tensor.fromArray(b.y, [rows, seqLen], { device: model.device, dtype: "i32" });
        return model.loss(x, y, { count: weight });
      });
      pending.push({ loss, weight });
      count += weight;
      if (pending.length >= READ_EVERY) await drain();
      onBatch?.(batches_);
    }
    await drain();
  } finally {
    for (const p of pending) p.loss.dispose();
  }
  if (count === 0) {
    throw new Error("evaluate: no validation targets (the stream is shorter than one window)");
  }
  return total / count;
}

/**
 * Cross-entropy in bits/token of `evalTokens` under the unigram distribution of `trainTokens`
 * (add-one smoothing over the vocabulary): the score of a model that ignores context.
 */
export function unigramBits(
  trainTokens: Int32Array,
  evalTokens: Int32Array,
  vocabSize: number,
): number {
  const counts = new Float64Array(vocabSize).fill(1);
  for (const t of trainTokens) counts[t]++;
  const total = trainTokens.length + vocabSize;
  let bits = 0;
  for (const t of evalTokens) bits -= Math.log2(counts[t] / total);
  return bits / evalTokens.length;
}

/** Nats to bits. */
export function natsToBits(nats: number): number {
  return nats / Math.LN2;
}
