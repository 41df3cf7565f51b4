/**
 * What a model family tells the rest of loralab: how its Hugging Face config.json reads and
 * writes, which tensors a checkpoint of a config holds (and under which stored names), how to
 * build the model from them or from scratch, and its PEFT conventions. The loader
 * (lib/io/hf_load.ts), model folders (lib/io/model_files.ts) and the conformance tests
 * (tests/models/conformance.test.ts) go through this interface and never name a family; each
 * family lives in one folder (`lib/models/<family>/`) and is listed once in `registry.ts`.
 *
 * This is mlx-lm's `models/<arch>.py` contract (`ModelArgs.from_dict`, `Model`, `sanitize`).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { CausalLM, PeftLayout } from "../nn/causal_lm.ts";
import type { LinearLike, WeightLayout } from "../nn/linear.ts";
import type { Rng } from "../rng.ts";
import type { Tensor } from "../tensor.ts";

/**
 * Reads checked weights for {@link Architecture.build}, by canonical name (the names of
 * {@link Architecture.expectedTensors}). The Hugging Face loader implements it: it has already
 * checked every name, shape and dtype, and quantizes linears as they are read when asked to.
 */
export interface WeightLoader {
  /** The backend the model is built on. */
  readonly device: Backend;
  /** A tensor by canonical name, as f32 on {@link device} (kept). */
  tensor(name: string): Promise<Tensor>;
  /**
   * `${path}.weight` (+ `${path}.bias` when `bias`) as a linear layer: an f32 Linear with the
   * stored `layout`, or a frozen QuantLinear when the load quantizes.
   */
  linear(path: string, layout: WeightLayout, bias: boolean): Promise<LinearLike>;
}

/** Options of {@link Architecture.init}. */
export interface ArchInitOptions {
  /** Backend for the parameters. */
  device: Backend;
  /** Seed of the initialisation. Default 0. */
  seed?: number;
}

/**
 * loralab's own model folder (what `saveModel` writes: config.json, F32 model.safetensors with
 * the canonical names, loralab's tokenizer.json), for the families that have one.
 */
export interface OwnFolder<C, M extends CausalLM> {
  /** A model whose parameters come from `state` (canonical names, f32, on `device`). */
  fromState(config: C, state: Map<string, Tensor>, device: Backend): M;
  /** Stored names the file may hold besides the parameters (a tied output copy). */
  readonly extraNames: readonly string[];
}

/** A model family: config, checkpoint names, building, and PEFT conventions. */
export interface Architecture<
  C = unknown,
  M extends CausalLM = CausalLM,
  N extends string = string,
> {
  /** The family's name, the models' `arch` (`"gpt2"`, `"llama"`). */
  readonly name: N;
  /** config.json `model_type` values of the family (the first is the family's own). */
  readonly modelTypes: readonly string[];
  /**
   * config.json `architectures` class names of the family; the first names the model in error
   * messages (`GPT2LMHeadModel`, `LlamaForCausalLM`).
   */
  readonly hfNames: readonly string[];
  /** PEFT conventions: `fan_in_fan_out` and the default LoRA targets (every block linear). */
  readonly peftLayout: PeftLayout;
  /** A parsed config.json → the family's config, checked; refuses variants it does not run. */
  configFromHf(raw: Record<string, unknown>): C;
  /** The family's config → config.json, as transformers writes it (configFromHf's inverse). */
  configToHf(config: C): Record<string, unknown>;
  /**
   * Parameters the config implies, by formula, without building anything (a lower bound where
   * the family's weights may carry optional extras): the size check against the weight files.
   */
  paramCount(config: C): number;
  /** The vocabulary size of a config (rows of the token embedding and of the logits). */
  vocabSize(config: C): number;
  /** The config dimensions that size the weights, for the size check's error message. */
  dims(config: C): Record<string, number>;
  /**
   * The shape of every parameter by canonical name, for a config: exactly the model's
   * `namedParameters()` (the conformance tests check it).
   */
  expectedTensors(config: C): Map<string, number[]>;
  /**
   * Stored name → canonical name (mlx-lm's `sanitize`): an optional prefix added, or null for
   * a stored tensor the model does not use (a buffer, a tied copy).
   */
  canonicalName(config: C): (stored: string) => string | null;
  /** The model from checked weights (read through `loader`, by canonical name). */
  build(loader: WeightLoader, config: C): Promise<M>;
  /** A freshly initialised model, seeded. */
  init(config: C, opts: ArchInitOptions): M;
  /** loralab's own folder format (`saveModel`/`loadModel`), where the family has one. */
  readonly ownFolder?: OwnFolder<C, M>;
  /**
   * A small valid config drawn from `rng` (a few blocks, widths of tens, a vocabulary of at
   * least 257 so that the byte tokenizer fits), for tests and examples: the conformance runner
   * builds every registered family from it.
   */
  smallConfig(rng: Rng): C;
}

/** The config type of an {@link Architecture}. */
export type ConfigOf<A> = A extends Architecture<infer C, infer _M, infer _N> ? C : never;
