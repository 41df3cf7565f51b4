/**
 * Batches of instruction examples: each example its own row (cut to `seqLen + 1` tokens, padded
 * with masked targets) or, with `pack`, several whole examples per row. Targets that do not
 * train are {@link IGNORE_INDEX} (-100), the value `crossEntropy` skips when told the count.
 * {@link ExampleSampler} is seeded and resumable; {@link evalExampleBatches} goes in order.
 *
 * Packing: examples are laid end to end in a row while they fit in its `seqLen + 1` tokens (an
 * example longer than that gets a row alone, cut). The first token of every example is masked
 * as a target, so no example learns to predict across a boundary; attention is NOT blocked at
 * boundaries: a packed example sees the examples before it in its row (as in most packed
 * fine-tuning without block-diagonal masks), and its positions continue from theirs.
 *
 * @module
 */

import { IGNORE_INDEX } from "../ops/nn.ts";
import { Rng } from "../rng.ts";
import type { Batch, BatchSamplerState } from "./batch.ts";
import type { EncodedExample } from "./examples.ts";

/** Options of {@link ExampleSampler}. */
export interface ExampleSamplerOptions {
  /** Rows per batch (B). */
  batchSize: number;
  /** Tokens per row (T). */
  seqLen: number;
  /** Seed of the example order. */
  seed: number;
  /** Pack several examples into a row. Default false. */
  pack?: boolean;
}

/**
 * Everything needed to continue an {@link ExampleSampler} exactly (plain JSON). It has the fields
 * of `BatchSamplerState` (so a checkpoint holds either); `rng` is the generator's state at the
 * start of the current epoch, before that epoch's shuffle, and `numTokens` the examples' total
 * length (checked on restore).
 */
export interface ExampleSamplerState extends BatchSamplerState {
  /** Always `"examples"`. */
  kind: "examples";
  /** Number of examples (checked on restore). */
  numExamples: number;
  /** Whether rows are packed (checked on restore). */
  pack: boolean;
  /** Epochs begun before the current one. */
  epoch: number;
  /** Examples of the current epoch's order already used. */
  cursor: number;
}

/** Number of targets that count (are not {@link IGNORE_INDEX}) in a batch's `y`. */
export function countTargets(y: Int32Array): number {
  let n = 0;
  for (let i = 0; i < y.length; i++) if (y[i] !== IGNORE_INDEX) n++;
  return n;
}

/**
 * Training batches of examples, in epochs: each epoch is a Fisher–Yates shuffle of all examples
 * drawn from `new Rng(seed)` (one generator, epoch after epoch), taken in order, `batchSize` rows
 * per batch (one example per row, or as many as fit with `pack`). A batch may span two epochs.
 * `getState()`/`setState()` continue the exact sequence of batches.
 */
export class ExampleSampler {
  /** Rows per batch (B). */
  readonly batchSize: number;
  /** Tokens per row (T). */
  readonly seqLen: number;
  /** Whether rows are packed. */
  readonly pack: boolean;
  /** Batches drawn so far. */
  get step(): number {
    return this.#step;
  }
  readonly #examples: readonly EncodedExample[];
  readonly #rng: Rng;
  readonly #numTokens: number;
  #epochStart: { s: number[]; spare: number | null };
  #order: number[] = [];
  #cursor = 0;
  #epoch = 0;
  #step = 0;

  /** Samples from `examples` (not copied: do not change them while sampling). */
  constructor(examples: readonly EncodedExample[], options: ExampleSamplerOptions) {
    const { batchSize, seqLen, seed } = options;
    checkShape("ExampleSampler", examples, batchSize, seqLen);
    if (!Number.isFinite(seed)) throw new RangeError(`ExampleSampler: bad seed ${seed}`);
    this.#examples = examples;
    this.batchSize = batchSize;
    this.seqLen = seqLen;
    this.pack = options.pack ?? false;
    this.#numTokens = examples.reduce((n, e) => n + e.ids.length, 0);
    this.#rng = new Rng(seed);
    this.#epochStart = this.#rng.getState();
    this.#order = this.#shuffle();
  }

  #shuffle(): number[] {
    const p = Array.from({ length: this.#examples.length }, (_, i) => i);
    for (let i = p.length - 1; i > 0; i--) {
      const j = this.#rng.int(i + 1);
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }

  /** The next example's index, starting a new epoch when this one is used up. */
  #peek(): number {
    if (this.#cursor === this.#order.length) {
      this.#epoch++;
      this.#epochStart = this.#rng.getState();
      this.#order = this.#shuffle();
      this.#cursor = 0;
    }
    return this.#order[this.#cursor];
  }

  /** Draws the next batch; `starts[b]` is the index of row b's first example. */
  next(): Batch {
    const B = this.batchSize, T = this.seqLen;
    const rows: EncodedExample[][] = [];
    const starts = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const row: EncodedExample[] = [];
      let fill = 0;
      do {
        const k = this.#peek();
        const n = Math.min(this.#examples[k].ids.length, T + 1);
        if (row.length > 0 && fill + n > T + 1) break;
        if (row.length === 0) starts[b] = k;
        row.push(this.#examples[k]);
        fill += n;
        this.#cursor++;
      } while (this.pack && fill < T + 1);
      rows.push(row);
    }
    this.#step++;
    return batchFromRows(rows, T, starts);
  }

  /** The state after the batches drawn so far (a copy; plain JSON). */
  getState(): ExampleSamplerState {
    return {
      kind: "examples",
      rng: { s: [...this.#epochStart.s], spare: this.#epochStart.spare },
      step: this.#step,
      numTokens: this.#numTokens,
      batchSize: this.batchSize,
      seqLen: this.seqLen,
      numExamples: this.#examples.length,
      pack: this.pack,
      epoch: this.#epoch,
      cursor: this.#cursor,
    };
  }

  /**
   * Continues from a state of {@link getState}. Throws if it was saved by a token-stream sampler
   * or for other examples, batch size, sequence length or packing.
   */
  setState(state: BatchSamplerState): void {
    const s = state as Partial<ExampleSamplerState> & BatchSamplerState;
    if (s.kind !== "examples") {
      throw new Error(
        "ExampleSampler.setState: the state is a token-stream sampler's (text data), not an " +
          "instruction-data sampler's",
      );
    }
    const mine = [this.#examples.length, this.#numTokens, this.batchSize, this.seqLen, this.pack];
    const theirs = [s.numExamples, s.numTokens, s.batchSize, s.seqLen, s.pack];
    if (mine.some((v, i) => v !== theirs[i])) {
      throw new Error(
        `ExampleSampler.setState: state is for (examples, tokens, batchSize, seqLen, pack) = ` +
          `(${theirs.join(", ")}), this sampler has (${mine.join(", ")})`,
      );
    }
    for (const [name, v] of [["step", s.step], ["epoch", s.epoch], ["cursor", s.cursor]] as const) {
      if (!Number.isInteger(v) || (v as number) < 0) {
        throw new Error(`ExampleSampler.setState: bad ${name} ${v}`);
      }
    }
    if (s.cursor! > this.#examples.length) {
      throw new Error(`ExampleSampler.setState: bad cursor ${s.cursor}`);
    }
    this.#rng.setState({ s: [...s.rng.s], spare: s.rng.spare });
    this.#epochStart = this.#rng.getState();
    this.#order = this.#shuffle();
    this.#cursor = s.cursor!;
    this.#epoch = s.epoch!;
    this.#step = s.step;
  }
}

/**
 * Validation batches: the examples in order, one per row (cut to `seqLen + 1` tokens, never
 * packed), `batchSize` rows per batch (the last may have fewer). Every trained target of every
 * example within the cut is scored exactly once. Deterministic.
 */
export function* evalExampleBatches(
  examples: readonly EncodedExample[],
  batchSize: number,
  seqLen: number,
): Generator<Batch> {
  checkShape("evalExampleBatches", examples, batchSize, seqLen);
  for (let k0 = 0; k0 < examples.length; k0 += batchSize) {
    const rows = Math.min(batchSize, examples.length - k0);
    const starts = Int32Array.from({ length: rows }, (_, b) => k0 + b);
    yield batchFromRows(Array.from(starts, (k) => [examples[k]]), seqLen, starts);
  }
}

/**
 * A batch from rows of examples laid end to end (each row's examples cut to `T + 1` tokens in
 * all): x is the row's first T tokens (padded with id 0), y the next T, with
 * {@link IGNORE_INDEX} where the token is masked or padding. `starts` is stored as given.
 */
export function batchFromRows(
  rows: readonly (readonly EncodedExample[])[],
  T: number,
  starts: Int32Array = new Int32Array(rows.length),
): Batch {
  const B = rows.length;
  const x = new Int32Array(B * T), y = new Int32Array(B * T).fill(IGNORE_INDEX);
  const ids = new Int32Array(T + 1), mask = new Uint8Array(T + 1);
  for (let b = 0; b < B; b++) {
    ids.fill(0);
    mask.fill(0);
    let at = 0;
    for (const e of rows[b]) {
      const n = Math.min(e.ids.length, T + 1 - at);
      ids.set(e.ids.subarray(0, n), at);
      mask.set(e.mask.subarray(0, n), at);
      at += n;
    }
    x.set(ids.subarray(0, T), b * T);
    for (let j = 0; j < T; j++) if (mask[j + 1]) y[b * T + j] = ids[j + 1];
  }
  return { x, y, batchSize: B, seqLen: T, starts };
}

function checkShape(
  who: string,
  examples: readonly EncodedExample[],
  batchSize: number,
  seqLen: number,
): void {
  for (const [name, v] of [["batchSize", batchSize], ["seqLen", seqLen]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`${who}: ${name} must be a positive integer, got ${v}`);
    }
  }
  if (examples.length === 0) throw new RangeError(`${who}: no examples`);
}
