/**
 * Llama checkpoints in Hugging Face's form: config.json (`LlamaConfig`) both ways, the tensors
 * a config implies under their canonical names (`model.layers.0.self_attn.q_proj.weight`,
 * weights [out, in]), stored names → canonical (`LlamaModel` files lack `model.`), and the model
 * built from checked weights.
 *
 * @module
 */

import { RMSNorm } from "../../nn/norms.ts";
import type { WeightLoader } from "../architecture.ts";
import { boolField, positiveField } from "../config_fields.ts";
import { type LlamaConfig, llamaDims, validateLlamaConfig } from "./config.ts";
import { Llama, LlamaBlock } from "./model.ts";

/** LlamaConfig fields → {@link LlamaConfig} (defaults as in transformers), validated. */
export function llamaConfigFromHf(raw: Record<string, unknown>): LlamaConfig {
  const c: LlamaConfig = {
    vocab_size: raw.vocab_size as number,
    hidden_size: raw.hidden_size as number,
    intermediate_size: raw.intermediate_size as number,
    num_hidden_layers: raw.num_hidden_layers as number,
    num_attention_heads: raw.num_attention_heads as number,
    num_key_value_heads: (raw.num_key_value_heads as number | null | undefined) ??
      (raw.num_attention_heads as number),
    rms_norm_eps: positiveField(raw, "rms_norm_eps", 1e-6),
    rope_theta: positiveField(raw, "rope_theta", 10000),
    max_position_embeddings: (raw.max_position_embeddings as number | undefined) ?? 2048,
    tie_word_embeddings: boolField(raw, "tie_word_embeddings", false),
    attention_bias: boolField(raw, "attention_bias", false),
    mlp_bias: boolField(raw, "mlp_bias", false),
    rope_scaling: (raw.rope_scaling as LlamaConfig["rope_scaling"]) ?? null,
  };
  if (raw.head_dim != null) c.head_dim = raw.head_dim as number;
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu") throw new Error(`config.json: hidden_act ${act} is not supported (silu)`);
  if (raw.pretraining_tp != null && raw.pretraining_tp !== 1) {
    // transformers itself computes the same function for any pretraining_tp; nothing to do.
  }
  validateLlamaConfig(c);
  return c;
}

/** config.json of a Llama model as transformers' LlamaConfig writes it (defaults filled in). */
export function llamaConfigToHf(c: LlamaConfig): Record<string, unknown> {
  const { nkv } = llamaDims(c);
  return {
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    ...c,
    num_key_value_heads: nkv,
    rms_norm_eps: c.rms_norm_eps ?? 1e-6,
    rope_theta: c.rope_theta ?? 10000,
    tie_word_embeddings: c.tie_word_embeddings ?? false,
    attention_bias: c.attention_bias ?? false,
    mlp_bias: c.mlp_bias ?? false,
    rope_scaling: c.rope_scaling ?? null,
    hidden_act: "silu",
  };
}

/** Weight parameters a Llama config implies (no biases, no norms): a lower bound, by formula. */
export function llamaParamCount(c: LlamaConfig): number {
  const C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const { nh, nkv, hd } = llamaDims(c);
  const block = 2 * C * nh * hd + 2 * C * nkv * hd + 3 * C * I;
  return V * C * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * block;
}

/** The dimensions of a Llama config that size its weights, for error messages. */
export function llamaWeightDims(c: LlamaConfig): Record<string, number> {
  return {
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size,
    num_hidden_layers: c.num_hidden_layers,
  };
}

/** The shape of every Llama parameter, by canonical name, in checkpoint order. */
export function llamaExpected(c: LlamaConfig): Map<string, number[]> {
  const C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const { nh, nkv, hd } = llamaDims(c);
  const m = new Map<string, number[]>([["model.embed_tokens.weight", [V, C]]]);
  const ab = c.attention_bias ?? false, mb = c.mlp_bias ?? false;
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    m.set(`${p}.input_layernorm.weight`, [C]);
    m.set(`${p}.post_attention_layernorm.weight`, [C]);
    for (
      const [n, o, i0, bias] of [
        ["self_attn.q_proj", nh * hd, C, ab],
        ["self_attn.k_proj", nkv * hd, C, ab],
        ["self_attn.v_proj", nkv * hd, C, ab],
        ["self_attn.o_proj", C, nh * hd, ab],
        ["mlp.gate_proj", I, C, mb],
        ["mlp.up_proj", I, C, mb],
        ["mlp.down_proj", C, I, mb],
      ] as const
    ) {
      m.set(`${p}.${n}.weight`, [o, i0]);
      if (bias) m.set(`${p}.${n}.bias`, [o]);
    }
  }
  m.set("model.norm.weight", [C]);
  if (!c.tie_word_embeddings) m.set("lm_head.weight", [V, C]);
  return m;
}

/** Llama stored name → canonical (`model.` prefix optional for LlamaModel; buffers ignored). */
export function llamaCanonical(c: LlamaConfig): (s: string) => string | null {
  return (s) => {
    if (s.endsWith(".rotary_emb.inv_freq")) return null;
    if (s === "lm_head.weight") return c.tie_word_embeddings ? null : s;
    return s.startsWith("model.") ? s : `model.${s}`;
  };
}

/** A Llama from checked weights (nn.Linear weights [out, in], quantized if the loader quantizes). */
export async function buildLlama(b: WeightLoader, c: LlamaConfig): Promise<Llama> {
  const eps = c.rms_norm_eps ?? 1e-6;
  const ab = c.attention_bias ?? false, mb = c.mlp_bias ?? false;
  const embed = await b.tensor("model.embed_tokens.weight");
  const layers: LlamaBlock[] = [];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    const lin = (n: string, bias: boolean) => b.linear(`${p}.${n}`, "out_in", bias);
    layers.push(
      new LlamaBlock(c, {
        input_layernorm: new RMSNorm(await b.tensor(`${p}.input_layernorm.weight`), eps),
        self_attn: {
          q_proj: await lin("self_attn.q_proj", ab),
          k_proj: await lin("self_attn.k_proj", ab),
          v_proj: await lin("self_attn.v_proj", ab),
          o_proj: await lin("self_attn.o_proj", ab),
        },
        post_attention_layernorm: new RMSNorm(
          await b.tensor(`${p}.post_attention_layernorm.weight`),
          eps,
        ),
        mlp: {
          gate_proj: await lin("mlp.gate_proj", mb),
          up_proj: await lin("mlp.up_proj", mb),
          down_proj: await lin("mlp.down_proj", mb),
        },
      }),
    );
  }
  const norm = new RMSNorm(await b.tensor("model.norm.weight"), eps);
  const head = c.tie_word_embeddings ? null : await b.tensor("lm_head.weight");
  return new Llama(c, b.device, { embed_tokens: embed, layers, norm, lm_head: head });
}
