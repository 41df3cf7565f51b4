/**
 * Sampling text from a causal language model (GPT-2, Llama): temperature, top-k, seeded.
 *
 * @module
 */

import { scope, Tensor } from "../tensor.ts";
import { narrow } from "../ops/mod.ts";
import { Rng } from "../rng.ts";
import type { CausalLM, KVCache } from "./causal_lm.ts";

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Called after each new token with the number sampled so far (for progress). */
  onToken?: (n: number) => void;
  /** New tokens to sample. Default 100. */
  maxTokens?: number;
  /** Softmax temperature; 0 means greedy. Default 1. */
  temperature?: number;
  /** Sample only among the k most likely tokens (0 = all). Default 0. */
  topK?: number;
  /** Seed of the sampler. Default 0. */
  seed?: number;
  /**
   * Sample only ids below this (the tokenizer's vocabSize, when the model's vocabulary is padded
   * beyond it, as many checkpoints' are). Default: the model's vocabSize.
   */
  vocabSize?: number;
  /** Stop early when this token is produced (e.g. end-of-text). */
  stopToken?: number;
}

/**
 * Continues `prompt` (token ids) by sampling one token at a time from the model, re-reading the
 * last contextLength tokens each step (no KV cache). Returns only the new tokens.
 */
export async function generate(
  model: CausalLM,
  prompt: number[],
  opts: GenerateOptions = {},
): Promise<number[]> {
  const maxTokens = opts.maxTokens ?? 100,
    temperature = opts.temperature ?? 1,
    topK = opts.topK ?? 0;
  if (!(temperature >= 0)) throw new RangeError(`generate: temperature ${temperature} must be ≥ 0`);
  if (!Number.isInteger(topK) || topK < 0) {
    throw new RangeError(`generate: topK ${topK} must be an integer ≥ 0`);
  }
  if (prompt.length === 0) throw new RangeError("generate: the prompt needs at least one token");
  const rng = new Rng(opts.seed ?? 0);
  const ctx = [...prompt], out: number[] = [];
  const V = Math.min(model.vocabSize, opts.vocabSize ?? Infinity);
  // With a key/value cache (GPT) each new token costs one position, not the whole window, while
  // the sequence fits the context; past it the window slides (every position moves), so the
  // window is re-read each step as without a cache.
  let cache: KVCache | null = null;
  const dropCache = () => {
    for (const t of cache ? [...cache.k, ...cache.v] : []) t.dispose();
    cache = null;
  };
  try {
    for (let i = 0; i < maxTokens; i++) {
      const useCache = model.forwardCached !== undefined && ctx.length <= model.contextLength;
      if (!useCache) dropCache();
      const feed = useCache && cache ? ctx.slice(-1) : ctx.slice(-model.contextLength);
      const T = feed.length;
      const logits = await scope(async () => {
        const ids = Tensor.fromArray(Int32Array.from(feed), [1, T], { device: model.device });
        let all: Tensor;
        if (useCache) {
          const r = model.forwardCached!(ids, cache, { lastOnly: true }); // [1, 1, V]
          for (const t of [...r.cache.k, ...r.cache.v]) t.keep();
          dropCache();
          cache = r.cache;
          all = r.logits;
        } else {
          // The window re-read (past the context): still only the last position's logits (its
          // keys and values are dropped with this scope).
          all = model.forwardCached
            ? model.forwardCached(ids, null, { lastOnly: true }).logits
            : model.forward(ids);
        }
        const last = narrow(all, 1, all.shape[1] - 1, 1); // [1, 1, V]
        return Array.from(await last.toArray());
      });
      const next = sample(logits.slice(0, V), temperature, topK, rng);
      out.push(next);
      ctx.push(next);
      opts.onToken?.(out.length);
      if (next === opts.stopToken) break;
    }
  } finally {
    dropCache();
  }
  return out;
}

/** Draws a token from logits with temperature and top-k (greedy at temperature 0). */
export function sample(logits: number[], temperature: number, topK: number, rng: Rng): number {
  if (temperature === 0) return logits.indexOf(Math.max(...logits));
  let idx = logits.map((_, i) => i);
  if (topK > 0 && topK < logits.length) {
    idx = idx.sort((a, b) => logits[b] - logits[a]).slice(0, topK);
  }
  const m = Math.max(...idx.map((i) => logits[i]));
  const w = idx.map((i) => Math.exp((logits[i] - m) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let u = rng.uniform() * total;
  for (let j = 0; j < idx.length; j++) {
    u -= w[j];
    if (u <= 0) return idx[j];
  }
  return idx[idx.length - 1];
}
