/**
 * The GPT-2 family (`gpt2`: `GPT2LMHeadModel`, `GPT2Model`) as an {@link Architecture}.
 *
 * @module
 */

import type { Architecture } from "../architecture.ts";
import type { GPTConfig } from "./config.ts";
import { GPT } from "./model.ts";
import {
  buildGpt2,
  gpt2Canonical,
  gpt2ConfigFromHf,
  gpt2ConfigToHf,
  gpt2Dims,
  gpt2Expected,
  gpt2ParamCount,
} from "./weights.ts";

export * from "./config.ts";
export * from "./model.ts";
export * from "./weights.ts";

/** GPT-2: learned positions, LayerNorm, GELU MLP, Conv1D weights [in, out], tied output. */
export const gpt2: Architecture<GPTConfig, GPT, "gpt2"> = {
  name: "gpt2",
  modelTypes: ["gpt2"],
  hfNames: ["GPT2LMHeadModel", "GPT2Model"],
  peftLayout: GPT.PEFT_LAYOUT,
  configFromHf: gpt2ConfigFromHf,
  configToHf: gpt2ConfigToHf,
  paramCount: gpt2ParamCount,
  vocabSize: (c) => c.vocab_size,
  dims: gpt2Dims,
  expectedTensors: gpt2Expected,
  canonicalName: () => gpt2Canonical,
  build: buildGpt2,
  init: (c, o) => GPT.init(c, o),
  ownFolder: {
    fromState: (c, state, device) => GPT.fromState(c, state, device),
    extraNames: ["lm_head.weight"], // tied to wte in GPT-2 checkpoints
  },
  smallConfig: (rng) => {
    const n_head = 1 + rng.int(4);
    return {
      vocab_size: 257 + rng.int(40), // the byte tokenizer (257 ids) fits
      n_positions: 16 + rng.int(16),
      n_embd: n_head * (4 + 2 * rng.int(4)),
      n_layer: 1 + rng.int(3),
      n_head,
      layer_norm_epsilon: 1e-5,
    };
  },
};
