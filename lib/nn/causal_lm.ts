/**
 * The small interface every decoder-only language model of loralab implements (GPT-2 and Llama),
 * so that fine-tuning (lib/peft/apply.ts), PEFT files, training and generation work on either.
 *
 * Parameter and module names are always the Hugging Face ones of the architecture
 * (`transformer.h.0.attn.c_attn` for GPT-2, `model.layers.0.self_attn.q_proj` for Llama), so
 * checkpoints and PEFT adapter files need no renaming table.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { CrossEntropyOptions } from "../ops/nn.ts";
import type { Rng } from "../rng.ts";
import { narrow } from "../ops/shape.ts";
import { fmtShape, scope, type Tensor } from "../tensor.ts";
import type { LinearLike } from "./linear.ts";

/** A residual sub-layer hook: h ↦ h' (a bottleneck adapter, see lib/peft/bottleneck.ts). */
export interface ResidualHook {
  /** h: [..., C] → [..., C]. */
  forward(h: Tensor): Tensor;
}

/** Optional bottleneck adapters of one block, applied to the attention and MLP outputs. */
export interface BlockAdapters {
  /** After attention, before its residual add. */
  attn?: ResidualHook;
  /** After the MLP, before its residual add. */
  mlp?: ResidualHook;
}

/** What fine-tuning needs of one transformer block. */
export interface CausalLMBlock {
  /** Adapter hooks (empty by default). */
  adapters: BlockAdapters;
}

/** How PEFT sees an architecture. */
export interface PeftLayout {
  /** PEFT's `fan_in_fan_out`: true when base weights are stored [in, out] (GPT-2's Conv1D). */
  fanInFanOut: boolean;
  /** Default LoRA targets: every linear layer of the blocks. */
  defaultTargets: readonly string[];
}

/** The output projection: its parameter name and whether it is the token embedding (tied). */
export interface OutputWeight {
  /** Parameter name (`transformer.wte.weight`, `lm_head.weight`, `model.embed_tokens.weight`). */
  name: string;
  /** Whether it is shared with the input embedding. */
  tied: boolean;
}

/** Keys and values of the positions generated so far, per block: [B, length, C] each. */
export interface KVCache {
  /** Keys, one tensor per block. */
  k: Tensor[];
  /** Values, one tensor per block. */
  v: Tensor[];
  /** Positions held. */
  length: number;
}

/** One block's step with a cache: its output and its keys and values of all positions so far. */
export type CachedBlockStep = (
  i: number,
  x: Tensor,
  past: { k: Tensor; v: Tensor } | null,
) => { y: Tensor; k: Tensor; v: Tensor };

/**
 * The shared part of a model's `forwardCached`: checks ids (i32 [B, Tn]) against the cache and
 * the context (`limit` names the config field), embeds them at positions cache.length … with
 * `embed(p0, Tn)`, and runs `layers` blocks, each with its cached keys and values. Returns the
 * last block's output (with `opts.lastOnly`, its last position only: [B, 1, C]) and the extended
 * cache.
 */
export function runCachedBlocks(
  what: string,
  ids: Tensor,
  cache: KVCache | null,
  context: { length: number; limit: string },
  embed: (p0: number, Tn: number) => Tensor,
  layers: number,
  step: CachedBlockStep,
  opts: ForwardCachedOptions = {},
): { x: Tensor; cache: KVCache } {
  if (ids.ndim !== 2 || ids.dtype !== "i32") {
    throw new RangeError(
      `${what}: ids must be i32 [B, T], got ${ids.dtype} ${fmtShape(ids.shape)}`,
    );
  }
  const Tn = ids.shape[1], p0 = cache?.length ?? 0;
  if (p0 + Tn > context.length) {
    throw new RangeError(
      `${what}: positions up to ${p0 + Tn} exceed ${context.limit} ${context.length}`,
    );
  }
  let x = embed(p0, Tn);
  const next: KVCache = { k: [], v: [], length: p0 + Tn };
  for (let i = 0; i < layers; i++) {
    const h = x; // a scope per block frees its intermediates at once (only y, k, v survive)
    const r = scope(() => step(i, h, cache ? { k: cache.k[i], v: cache.v[i] } : null));
    x = r.y;
    next.k.push(r.k);
    next.v.push(r.v);
  }
  return { x: opts.lastOnly ? narrow(x, 1, Tn - 1, 1) : x, cache: next };
}

/** Options of {@link CausalLM.forwardCached}. */
export interface ForwardCachedOptions {
  /**
   * Logits of the last new position only, [B, 1, V] (generation needs no more; a long prompt's
   * logits for every position could exceed a GPU's largest buffer). Default false: [B, Tn, V].
   */
  lastOnly?: boolean;
}

/** Settings of gradient checkpointing (see {@link CausalLM.gradCheckpointing}). */
export interface GradCheckpointing {
  /** Random generators the blocks draw from (LoRA dropout), rewound for the recomputation. */
  rngs: readonly Rng[];
}

/** A decoder-only causal language model. */
export interface CausalLM {
  /** Hugging Face `model_type`: `"gpt2"` or `"llama"`. */
  readonly arch: string;
  /** Backend holding the parameters. */
  readonly device: Backend;
  /** Rows of the output logits (the config's vocab_size). */
  readonly vocabSize: number;
  /** Longest sequence `forward` accepts. */
  readonly contextLength: number;
  /** Width of the residual stream. */
  readonly hiddenSize: number;
  /** Number of blocks. */
  readonly numLayers: number;
  /** The blocks, bottom first. */
  readonly blocks: readonly CausalLMBlock[];
  /** PEFT conventions of the architecture. */
  readonly peftLayout: PeftLayout;
  /**
   * Gradient checkpointing: when set, `forward` under a tape keeps only each block's input and
   * recomputes the block in the backward pass (lib/autograd/checkpoint.ts), rewinding `rngs`
   * (dropout) so the recomputation matches. Null (the default): every activation is kept.
   */
  gradCheckpointing: GradCheckpointing | null;
  /** The output projection. */
  readonly outputWeight: OutputWeight;
  /** Parameter names of the final norm. */
  readonly finalNormNames: readonly string[];
  /** Module path of block `i` (`transformer.h.3`, `model.layers.3`). */
  blockPrefix(i: number): string;
  /** Block index of a parameter name or module path, or -1 outside the blocks. */
  blockIndex(name: string): number;
  /** ids: i32 [B, T] → logits [B, T, vocabSize]. */
  forward(ids: Tensor): Tensor;
  /**
   * Optional: logits of new positions given a {@link KVCache} of earlier ones (the prompt
   * without a cache, then one token at a time); `generate` uses it while the context fits.
   */
  forwardCached?(
    ids: Tensor,
    cache: KVCache | null,
    opts?: ForwardCachedOptions,
  ): { logits: Tensor; cache: KVCache };
  /**
   * Mean next-token cross-entropy (nats/token): ids, targets i32 [B, T] → scalar. With
   * `options.count` (the number of targets that are not -100) the -100 targets are masked out
   * of the mean and the gradient (see `CrossEntropyOptions` in lib/ops/nn.ts).
   */
  loss(ids: Tensor, targets: Tensor, options?: CrossEntropyOptions): Tensor;
  /** Every tensor parameter by Hugging Face name (quantized weights are not tensors). */
  namedParameters(): Map<string, Tensor>;
  /** Every block linear layer by module path. */
  linears(): Map<string, LinearLike>;
  /** Replaces the linear layer at a module path. */
  setLinear(path: string, layer: LinearLike): void;
  /** Number of tensor parameters (tied weights counted once). */
  readonly numParameters: number;
  /** Frees every parameter. */
  dispose(): void;
}

/** Block index from a name that starts with `<prefix>.<i>.` (or is `<prefix>.<i>`), else -1. */
export function blockIndexOf(prefix: string, name: string): number {
  if (!name.startsWith(`${prefix}.`)) return -1;
  const m = /^(\d+)(\.|$)/.exec(name.slice(prefix.length + 1));
  return m ? Number(m[1]) : -1;
}
