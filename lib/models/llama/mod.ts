/**
 * The Llama family (`llama`: `LlamaForCausalLM`, `LlamaModel`) as an {@link Architecture}.
 *
 * @module
 */

import type { Architecture } from "../architecture.ts";
import type { LlamaConfig } from "./config.ts";
import { Llama } from "./model.ts";
import {
  buildLlama,
  llamaCanonical,
  llamaConfigFromHf,
  llamaConfigToHf,
  llamaExpected,
  llamaParamCount,
  llamaWeightDims,
} from "./weights.ts";

export * from "./config.ts";
export * from "./rope.ts";
export * from "./model.ts";
export * from "./weights.ts";

/** Llama: RoPE, grouped-query attention, RMSNorm, SwiGLU MLP, nn.Linear weights [out, in]. */
export const llama: Architecture<LlamaConfig, Llama, "llama"> = {
  name: "llama",
  modelTypes: ["llama"],
  hfNames: ["LlamaForCausalLM", "LlamaModel"],
  peftLayout: Llama.PEFT_LAYOUT,
  configFromHf: llamaConfigFromHf,
  configToHf: llamaConfigToHf,
  paramCount: llamaParamCount,
  vocabSize: (c) => c.vocab_size,
  dims: llamaWeightDims,
  expectedTensors: llamaExpected,
  canonicalName: llamaCanonical,
  build: buildLlama,
  init: (c, o) => Llama.init(c, o),
  smallConfig: (rng) => {
    // Grouped-query attention (two query heads per key/value head), sometimes a head_dim that
    // is not hidden_size / heads, and a coin each for tied output and biases.
    const nkv = 1 + rng.int(2), nh = 2 * nkv, hd = 4 + 2 * rng.int(3);
    const wide = rng.int(2) === 1;
    const c: LlamaConfig = {
      vocab_size: 257 + rng.int(40), // the byte tokenizer (257 ids) fits
      hidden_size: nh * hd + (wide ? 4 : 0),
      intermediate_size: 8 + rng.int(24),
      num_hidden_layers: 1 + rng.int(3),
      num_attention_heads: nh,
      num_key_value_heads: nkv,
      max_position_embeddings: 16 + rng.int(16),
      rope_theta: 100 + rng.int(10000),
      rms_norm_eps: 1e-5,
      tie_word_embeddings: rng.int(2) === 1,
      attention_bias: rng.int(2) === 1,
      mlp_bias: rng.int(2) === 1,
    };
    if (wide) c.head_dim = hd;
    return c;
  },
};
