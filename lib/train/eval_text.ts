/**
 * Evaluation of a model on text: mean next-token cross-entropy (nats/token), perplexity, bits
 * per token and bits per byte, over the same in-order windows as validation
 * ({@link evaluate}, `evalBatches`).
 *
 * Bits per byte compare models with different tokenizers: the nats summed over every predicted
 * token, divided by ln 2 times the UTF-8 bytes of the text those tokens spell. With a BPE
 * tokenizer a token is several bytes, so bits per byte is well below bits per token; dividing
 * by the token count instead (lib/train/eval.ts `natsToBits`) is bits per byte only for a
 * byte-level tokenizer. The end-of-text token between documents counts as one byte (the
 * separator), so with the byte tokenizer the two numbers are equal.
 *
 * @module
 */

import { type Batch, evalWindowCount } from "../data/batch.ts";
import { countTargets, evalExampleBatches } from "../data/example_batch.ts";
import type { EncodedExample } from "../data/examples.ts";
import { ByteTokenizer, type Tokenizer } from "../data/tokenizer.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { evaluate, evaluateBatches } from "./eval.ts";

/** Options of {@link evaluateText}. */
export interface TextEvalOptions {
  /** Tokens per window (the context length used). */
  ctx: number;
  /** Windows per batch. */
  batch: number;
  /**
   * Evaluate only the first `maxTokens` tokens of the stream (documents encoded and joined with
   * the end-of-text token). Default all.
   */
  maxTokens?: number;
  /** Called after each group of batches with windows done and windows in all. */
  onProgress?: (done: number, total: number) => void;
}

/** What {@link evaluateText} measured. */
export interface TextEvalResult {
  /** Mean cross-entropy, nats per predicted token. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** loss / ln 2. */
  bitsPerToken: number;
  /** nats / (ln 2 · bytes). */
  bitsPerByte: number;
  /** Sum of the cross-entropies (nats). */
  nats: number;
  /** Tokens predicted (targets): windows · ctx. */
  tokens: number;
  /** UTF-8 bytes of the text those tokens spell (end-of-text = 1). */
  bytes: number;
  /** Windows of `ctx` tokens evaluated. */
  windows: number;
  /** Tokens of the stream that was cut into windows (≤ maxTokens). */
  streamTokens: number;
  /** Whether the data holds more tokens than were evaluated (maxTokens cut it). */
  truncated: boolean;
}

/** Batches per call of {@link evaluate} (one progress report each). */
const GROUP = 8;

/**
 * Evaluates `model` on `documents` (see the module docs). The stream is `doc₀ EOT doc₁ EOT …`,
 * cut after `maxTokens` tokens; windows start at multiples of `ctx`, and the targets are stream
 * positions 1 … windows·ctx (the first token is only context, and a tail shorter than a window
 * is left out, as in validation).
 */
export async function evaluateText(
  model: CausalLM,
  tokenizer: Tokenizer,
  documents: readonly string[],
  opts: TextEvalOptions,
): Promise<TextEvalResult> {
  const { ctx: T, batch: B } = opts;
  const limit = opts.maxTokens ?? Infinity;
  // Encode only as many documents as the limit needs.
  const docs: number[][] = [];
  let n = 0;
  for (const d of documents) {
    if (n >= limit) break;
    const ids = tokenizer.encode(d);
    docs.push(ids);
    n += ids.length + 1;
  }
  const truncated = n > limit || docs.length < documents.length;
  const len = Math.min(n, limit);
  const stream = new Int32Array(len);
  let o = 0;
  for (const ids of docs) {
    for (const id of ids) if (o < len) stream[o++] = id;
    if (o < len) stream[o++] = tokenizer.eotToken;
  }
  const windows = evalWindowCount(len, T);
  if (windows === 0) {
    throw new Error(`the data has ${len} tokens, fewer than one window of ctx ${T} + 1`);
  }
  let nats = 0;
  const step = B * GROUP;
  for (let w0 = 0; w0 < windows; w0 += step) {
    const w1 = Math.min(windows, w0 + step);
    const part = stream.subarray(w0 * T, w1 * T + 1); // windows w0 … w1-1 and their targets
    nats += (await evaluate(model, part, B, T)) * (w1 - w0) * T;
    opts.onProgress?.(w1, windows);
  }
  const tokens = windows * T;
  const bytes = targetBytes(tokenizer, docs, tokens);
  return result(nats, tokens, bytes, { windows, streamTokens: len, truncated });
}

/** The measures of {@link TextEvalResult} from summed nats, targets and their bytes. */
function result(
  nats: number,
  tokens: number,
  bytes: number,
  extent: Pick<TextEvalResult, "windows" | "streamTokens" | "truncated">,
): TextEvalResult {
  return {
    loss: nats / tokens,
    perplexity: Math.exp(nats / tokens),
    bitsPerToken: nats / tokens / Math.LN2,
    bitsPerByte: nats / (bytes * Math.LN2),
    nats,
    tokens,
    bytes,
    ...extent,
  };
}

/**
 * UTF-8 bytes spelled by stream positions 1 … `last` of `doc₀ EOT doc₁ EOT …`: for each
 * document, the bytes of its covered tokens (the difference of the decoded prefixes' lengths,
 * so a tokenizer that merges bytes across tokens is counted right), plus one per end-of-text
 * token. A prefix cut inside a multi-byte character decodes to U+FFFD (3 bytes), which can
 * miscount that one character; the byte tokenizer is counted exactly (one byte per token).
 */
export function targetBytes(tokenizer: Tokenizer, docs: number[][], last: number): number {
  const byteTok = tokenizer instanceof ByteTokenizer;
  const enc = new TextEncoder();
  const prefixBytes = (ids: number[], k: number) =>
    k === 0 ? 0 : byteTok ? k : enc.encode(tokenizer.decode(ids.slice(0, k))).length;
  let bytes = 0, start = 0;
  for (const ids of docs) {
    if (start > last) break;
    const a = Math.max(1, start) - start; // first covered token of this document
    const b = Math.min(start + ids.length, last + 1) - start; // one past the last
    if (b > a) bytes += prefixBytes(ids, b) - prefixBytes(ids, a);
    if (start + ids.length <= last && start + ids.length >= 1) bytes += 1; // its end-of-text
    start += ids.length + 1;
  }
  return bytes;
}

/**
 * Evaluates `model` on instruction examples (lib/data/examples.ts), as validation does: one
 * example per row cut to `ctx + 1` tokens, only the targets the mask keeps (completions and
 * assistant turns, unless they were encoded with `trainOnPrompt`). Examples are taken in order
 * until `maxTokens` tokens are reached. `tokens` counts the scored targets and `bytes` the UTF-8
 * bytes they spell (each run of consecutive targets decoded as one; end-of-text = 1 byte);
 * `windows` counts the examples.
 */
export async function evaluateExamples(
  model: CausalLM,
  tokenizer: Tokenizer,
  examples: readonly EncodedExample[],
  opts: TextEvalOptions,
): Promise<TextEvalResult> {
  const { ctx: T, batch: B } = opts;
  const limit = opts.maxTokens ?? Infinity;
  const chosen: EncodedExample[] = [];
  let n = 0;
  for (const e of examples) {
    if (n >= limit) break;
    chosen.push(e);
    n += Math.min(e.ids.length, T + 1);
  }
  const all = [...evalExampleBatches(chosen, B, T)];
  let nats = 0, tokens = 0;
  for (let i = 0; i < all.length; i += GROUP) {
    const group: Batch[] = all.slice(i, i + GROUP);
    const weight = group.reduce((s, b) => s + countTargets(b.y), 0);
    if (weight > 0) nats += (await evaluateBatches(model, group)) * weight;
    tokens += weight;
    opts.onProgress?.(Math.min(chosen.length, (i + GROUP) * B), chosen.length);
  }
  if (tokens === 0) {
    throw new Error(`the examples have no targets within ctx ${T} + 1 tokens`);
  }
  const bytes = chosen.reduce((s, e) => s + exampleTargetBytes(tokenizer, e, T), 0);
  return result(nats, tokens, bytes, {
    windows: chosen.length,
    streamTokens: n,
    truncated: chosen.length < examples.length,
  });
}

/**
 * UTF-8 bytes spelled by the targets of `e` cut to `T + 1` tokens: each run of consecutive
 * targets decoded as one text (end-of-text tokens count one byte each; the byte tokenizer counts
 * one byte per token exactly).
 */
export function exampleTargetBytes(tokenizer: Tokenizer, e: EncodedExample, T: number): number {
  const n = Math.min(e.ids.length, T + 1);
  const byteTok = tokenizer instanceof ByteTokenizer;
  const enc = new TextEncoder();
  let bytes = 0, run: number[] = [];
  const flush = () => {
    if (run.length) bytes += byteTok ? run.length : enc.encode(tokenizer.decode(run)).length;
    run = [];
  };
  for (let i = 1; i < n; i++) {
    if (!e.mask[i]) flush();
    else if (e.ids[i] === tokenizer.eotToken) {
      flush();
      bytes += 1;
    } else run.push(e.ids[i]);
  }
  flush();
  return bytes;
}
