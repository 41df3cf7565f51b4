/**
 * Instruction examples as token ids with a training mask: segments (lib/data/chat_template.ts)
 * tokenized one by one, so the boundary between masked prompt and trained completion is exact.
 *
 * @module
 */

import { type ChatFormat, exampleSegments, type Segment } from "./chat_template.ts";
import type { InstructExample } from "./instruct.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** One tokenized example. */
export interface EncodedExample {
  /** Token ids, [n]. */
  ids: Int32Array;
  /**
   * [n]: 1 where `ids[i]` is a training target (predicted from `ids[0..i)`), 0 where it is masked.
   * `mask[0]` is always 0: the first token has nothing to be predicted from.
   */
  mask: Uint8Array;
  /** Tokens before the first trained one (the prompt, for samples); `n` if none is trained. */
  promptLength: number;
  /** 1-based line of the source file. */
  line: number;
}

/** Options of {@link encodeExample}. */
export interface EncodeOptions {
  /** Train on every token (prompt too), not only completions / assistant turns. Default false. */
  trainOnPrompt?: boolean;
}

/**
 * Tokenizes `segments` one at a time (`tokenizer.encode` of each text, then end-of-text where a
 * segment asks for it) and marks the tokens of trained segments. With `trainOnPrompt` every token
 * but the first is a target.
 */
export function encodeSegments(
  tokenizer: Tokenizer,
  segments: readonly Segment[],
  line: number,
  options: EncodeOptions = {},
): EncodedExample {
  const ids: number[] = [], mask: number[] = [];
  for (const s of segments) {
    const t = s.text === "" ? [] : tokenizer.encode(s.text);
    if (s.eos) t.push(tokenizer.eotToken);
    const m = s.train || options.trainOnPrompt ? 1 : 0;
    for (const id of t) {
      ids.push(id);
      mask.push(m);
    }
  }
  if (mask.length > 0) mask[0] = 0;
  const first = mask.indexOf(1);
  return {
    ids: Int32Array.from(ids),
    mask: Uint8Array.from(mask),
    promptLength: first < 0 ? ids.length : first,
    line,
  };
}

/**
 * Encodes instruction examples (`chat` renders conversations). A template that fails is an
 * Error naming `file:line` and the template's message.
 */
export function encodeExamples(
  tokenizer: Tokenizer,
  examples: readonly InstructExample[],
  chat: ChatFormat,
  file: string,
  options: EncodeOptions = {},
): EncodedExample[] {
  return examples.map((e) => {
    let segments: Segment[];
    try {
      segments = exampleSegments(e, chat);
    } catch (err) {
      throw new Error(`${file}:${e.line}: ${(err as Error).message}`);
    }
    return encodeSegments(tokenizer, segments, e.line, options);
  });
}

/** Trained and masked targets of examples cut to `seqLen + 1` tokens (what training sees). */
export interface TargetCounts {
  /** Targets that count in the loss. */
  trained: number;
  /** Targets masked out (prompt tokens; padding is not counted). */
  masked: number;
  /** Examples longer than `seqLen + 1` tokens (cut at the end). */
  truncated: number;
  /** Examples left with no trained target after the cut. */
  empty: number;
}

/** Counts {@link TargetCounts} over `examples` for a context of `seqLen`. */
export function countExampleTargets(
  examples: readonly EncodedExample[],
  seqLen: number,
): TargetCounts {
  const c: TargetCounts = { trained: 0, masked: 0, truncated: 0, empty: 0 };
  for (const e of examples) {
    const n = Math.min(e.ids.length, seqLen + 1);
    if (e.ids.length > seqLen + 1) c.truncated++;
    let t = 0;
    for (let i = 1; i < n; i++) t += e.mask[i];
    c.trained += t;
    c.masked += n - 1 - t;
    if (t === 0) c.empty++;
  }
  return c;
}
