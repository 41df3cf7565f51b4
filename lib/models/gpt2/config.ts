/**
 * GPT-2's hyper-parameters (Hugging Face `GPT2Config` field names), their checks, and the
 * parameter count they imply.
 *
 * @module
 */

/** GPT-2 hyper-parameters, with Hugging Face `GPT2Config` field names. */
export interface GPTConfig {
  /** Vocabulary size. */
  vocab_size: number;
  /** Maximum context length (learned positions). */
  n_positions: number;
  /** Embedding width C. */
  n_embd: number;
  /** Number of blocks. */
  n_layer: number;
  /** Attention heads (C must divide by it). */
  n_head: number;
  /** LayerNorm epsilon. Default 1e-5. */
  layer_norm_epsilon?: number;
}

/**
 * Parameters of a GPT-2 model from its config alone (tied output): GPT-2 small (V 50257,
 * P 1024, C 768, 12 layers) has 124,439,808.
 */
export function gptParameterCount(c: GPTConfig): number {
  const C = c.n_embd;
  const block = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) +
    (4 * C * C + C);
  return c.vocab_size * C + c.n_positions * C + c.n_layer * block + 2 * C;
}

/** Checks a config and names the first problem. */
export function validateConfig(c: GPTConfig): void {
  for (const k of ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) {
      throw new RangeError(`GPTConfig.${k} = ${c[k]}: must be a positive integer`);
    }
  }
  if (c.n_embd % c.n_head !== 0) {
    throw new RangeError(`GPTConfig: n_embd ${c.n_embd} is not divisible by n_head ${c.n_head}`);
  }
}
