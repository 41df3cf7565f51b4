/**
 * Samples a run writes before and after training: the prompts (fixed openings for text, the
 * prompt part of the first validation examples for instruction data) and the sampler settings.
 *
 * @module
 */

import type { EncodedExample } from "../data/examples.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { generate } from "../nn/generate.ts";
import type { PeftModel } from "../peft/apply.ts";
import { Progress } from "./progress.ts";

/** The openings sampled from for text data. */
export const PROMPTS: readonly string[] = [
  "Call me Ishmael. ",
  "The whale ",
  "Captain Ahab said, ",
];

/** A sample prompt: its text and token ids. */
export interface SamplePrompt {
  /** The prompt as text. */
  text: string;
  /** Its token ids. */
  ids: number[];
}

/**
 * `n` sample prompts (default 3): for instruction data (`valExamples`) the prompt part
 * (everything before the first trained token: rendered prompt, or conversation up to the first
 * assistant turn) of the first `n` validation examples; for text (null), the fixed
 * {@link PROMPTS} in turn.
 */
export function samplePrompts(
  tok: Tokenizer,
  valExamples: readonly EncodedExample[] | null,
  n = 3,
): SamplePrompt[] {
  if (!valExamples) {
    return Array.from({ length: n }, (_, i) => PROMPTS[i % PROMPTS.length])
      .map((text) => ({ text, ids: tok.encode(text) }));
  }
  return valExamples.slice(0, n).map((e) => {
    const ids = Array.from(e.ids.subarray(0, e.promptLength));
    return { text: tok.decode(ids), ids };
  });
}

/** How {@link samplesFrom} samples. */
export interface SampleOptions {
  /** Seed of prompt `i` is `seed + i`. */
  seed: number;
  /** Tokens per sample at most. Default 160. */
  maxTokens?: number;
}

/**
 * One continuation per prompt (`maxTokens` at most, temperature 0.8, top-k 40, seed `seed + i`,
 * stopping at end-of-text), with `pm`'s dropout off while sampling.
 */
export async function samplesFrom(
  model: CausalLM,
  pm: PeftModel | null,
  tok: Tokenizer,
  prompts: readonly SamplePrompt[],
  o: SampleOptions,
): Promise<string[]> {
  const seed = o.seed;
  pm?.setTraining(false);
  const out: string[] = [];
  const maxTokens = o.maxTokens ?? 160;
  // Silent when quick; on a big model, a line with the ETA every 10 s.
  const progress = new Progress(prompts.length * maxTokens, "sampling ", 10, "stdout", true);
  for (const [i, p] of prompts.entries()) {
    const ids = await generate(model, p.ids, {
      maxTokens,
      onToken: (n) => progress.update(i * maxTokens + n, { sample: `${i + 1}/${prompts.length}` }),
      temperature: 0.8,
      topK: 40,
      seed: seed + i,
      stopToken: tok.eotToken,
      vocabSize: tok.vocabSize,
    });
    out.push(tok.decode(ids.filter((t) => t !== tok.eotToken)));
  }
  pm?.setTraining(true);
  return out;
}
