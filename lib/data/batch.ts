/**
 * Batches for next-token prediction over one token stream: documents encoded and joined with the
 * end-of-text token, random windows for training ({@link BatchSampler}, seeded and resumable) and
 * in-order windows for validation loss ({@link evalBatches}).
 *
 * @module
 */

import { Rng } from "../rng.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** One batch: `batchSize` windows of `seqLen` tokens, row-major; `y` is `x` shifted by one. */
export interface Batch {
  /** Inputs, `[batchSize * seqLen]`: row `b` is `tokens[starts[b] .. starts[b] + seqLen)`. */
  x: Int32Array;
  /** Targets, `[batchSize * seqLen]`: row `b` is `tokens[starts[b] + 1 .. starts[b] + seqLen]`. */
  y: Int32Array;
  /** Number of rows (windows) in this batch. */
  batchSize: number;
  /** Tokens per row. */
  seqLen: number;
  /** Offset in the stream of each row's first input token. */
  starts: Int32Array;
}

/**
 * Encodes each document and joins them into one stream, with the end-of-text token after every
 * document (as GPT-2's training data does): `doc₀ EOT doc₁ EOT … docₙ EOT`.
 */
export function encodeDocuments(tokenizer: Tokenizer, documents: readonly string[]): Int32Array {
  const parts = documents.map((d) => tokenizer.encode(d));
  const out = new Int32Array(parts.reduce((n, p) => n + p.length + 1, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
    out[o++] = tokenizer.eotToken;
  }
  return out;
}

/** Options for {@link BatchSampler}. */
export interface BatchSamplerOptions {
  /** Rows per batch (B). */
  batchSize: number;
  /** Tokens per row (T). */
  seqLen: number;
  /** Seed of the window positions. */
  seed: number;
}

/** Everything needed to continue a {@link BatchSampler} exactly; plain JSON. */
export interface BatchSamplerState {
  /** The generator's state (`Rng.getState()`). */
  rng: { s: number[]; spare: number | null };
  /** Batches drawn so far. */
  step: number;
  /** Length of the token stream it was drawn from (checked on restore). */
  numTokens: number;
  /** Rows per batch (checked on restore). */
  batchSize: number;
  /** Tokens per row (checked on restore). */
  seqLen: number;
}

/**
 * Random training windows: each row starts at a uniform offset in `[0, N − T − 1]` (so its target
 * `y`, one token further, stays inside the stream of N tokens), drawn from `new Rng(seed)`, rows
 * independently, with replacement. `getState()`/`setState()` save and restore the position in the
 * sequence of batches, so a resumed run draws exactly the batches the uninterrupted one would.
 */
export class BatchSampler {
  /** Rows per batch (B). */
  readonly batchSize: number;
  /** Tokens per row (T). */
  readonly seqLen: number;
  /** Batches drawn so far. */
  get step(): number {
    return this.#step;
  }
  readonly #tokens: Int32Array;
  readonly #rng: Rng;
  #step = 0;

  /** Samples from `tokens` (not copied: do not change it while sampling). */
  constructor(tokens: Int32Array, options: BatchSamplerOptions) {
    const { batchSize, seqLen, seed } = options;
    checkShape("BatchSampler", tokens, batchSize, seqLen);
    if (!Number.isFinite(seed)) throw new RangeError(`BatchSampler: bad seed ${seed}`);
    this.#tokens = tokens;
    this.batchSize = batchSize;
    this.seqLen = seqLen;
    this.#rng = new Rng(seed);
  }

  /** Draws the next batch. */
  next(): Batch {
    const { batchSize: B, seqLen: T } = this;
    const span = this.#tokens.length - T; // number of valid start offsets
    const starts = new Int32Array(B);
    for (let b = 0; b < B; b++) starts[b] = this.#rng.int(span);
    this.#step++;
    return gather(this.#tokens, starts, T);
  }

  /** The state after the batches drawn so far (a copy; plain JSON). */
  getState(): BatchSamplerState {
    return {
      rng: this.#rng.getState(),
      step: this.#step,
      numTokens: this.#tokens.length,
      batchSize: this.batchSize,
      seqLen: this.seqLen,
    };
  }

  /**
   * Continues from a state of {@link getState}. Throws if it was saved for another stream length,
   * batch size or sequence length.
   */
  setState(state: BatchSamplerState): void {
    const mine = [this.#tokens.length, this.batchSize, this.seqLen];
    const theirs = [state.numTokens, state.batchSize, state.seqLen];
    if (mine.some((v, i) => v !== theirs[i])) {
      throw new Error(
        `BatchSampler.setState: state is for (tokens, batchSize, seqLen) = (${theirs.join(", ")})` +
          `, this sampler has (${mine.join(", ")})`,
      );
    }
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new Error(`BatchSampler.setState: bad step ${state.step}`);
    }
    this.#rng.setState({ s: [...state.rng.s], spare: state.rng.spare });
    this.#step = state.step;
  }
}

/** Number of full non-overlapping windows of `seqLen` that {@link evalBatches} yields. */
export function evalWindowCount(numTokens: number, seqLen: number): number {
  return numTokens > seqLen ? Math.floor((numTokens - 1) / seqLen) : 0;
}

/**
 * Validation batches: the stream cut in order into non-overlapping windows, window `k` starting at
 * `k · seqLen`, `batchSize` windows per batch (the last batch may have fewer rows). Every
 * predicted token `tokens[1 .. W·seqLen]` is a target exactly once, `W = evalWindowCount(…)`; the
 * final `(N − 1) mod seqLen` targets, too few for a full window, are left out. Deterministic.
 */
export function* evalBatches(
  tokens: Int32Array,
  batchSize: number,
  seqLen: number,
): Generator<Batch> {
  checkShape("evalBatches", tokens, batchSize, seqLen);
  const windows = evalWindowCount(tokens.length, seqLen);
  for (let w0 = 0; w0 < windows; w0 += batchSize) {
    const rows = Math.min(batchSize, windows - w0);
    const starts = new Int32Array(rows);
    for (let b = 0; b < rows; b++) starts[b] = (w0 + b) * seqLen;
    yield gather(tokens, starts, seqLen);
  }
}

function gather(tokens: Int32Array, starts: Int32Array, T: number): Batch {
  const B = starts.length;
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    x.set(tokens.subarray(starts[b], starts[b] + T), b * T);
    y.set(tokens.subarray(starts[b] + 1, starts[b] + T + 1), b * T);
  }
  return { x, y, batchSize: B, seqLen: T, starts };
}

function checkShape(who: string, tokens: Int32Array, batchSize: number, seqLen: number): void {
  if (!(tokens instanceof Int32Array)) throw new TypeError(`${who}: tokens must be an Int32Array`);
  for (const [name, v] of [["batchSize", batchSize], ["seqLen", seqLen]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`${who}: ${name} must be a positive integer, got ${v}`);
    }
  }
  if (tokens.length < seqLen + 1) {
    throw new RangeError(
      `${who}: need at least seqLen + 1 = ${
        seqLen + 1
      } tokens for one window, got ${tokens.length}`,
    );
  }
}
