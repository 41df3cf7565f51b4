/**
 * GPT-2 checkpoints in Hugging Face's form: config.json (`GPT2Config`) both ways, the tensors a
 * config implies under their canonical names (`transformer.h.0.attn.c_attn.weight`, Conv1D
 * weights [in, out]), stored names → canonical (`GPT2Model` files lack `transformer.`), and the
 * model built from checked weights.
 *
 * @module
 */

import { LayerNorm } from "../../nn/linear.ts";
import type { WeightLoader } from "../architecture.ts";
import { positiveField } from "../config_fields.ts";
import { type GPTConfig, gptParameterCount, validateConfig } from "./config.ts";
import { Block, GPT } from "./model.ts";

/** GPT2Config fields → {@link GPTConfig}, refusing variants the model does not implement. */
export function gpt2ConfigFromHf(raw: Record<string, unknown>): GPTConfig {
  const c: GPTConfig = {
    vocab_size: raw.vocab_size as number,
    n_positions: raw.n_positions as number,
    n_embd: raw.n_embd as number,
    n_layer: raw.n_layer as number,
    n_head: raw.n_head as number,
    layer_norm_epsilon: positiveField(raw, "layer_norm_epsilon", 1e-5),
  };
  validateConfig(c);
  const act = raw.activation_function ?? "gelu_new";
  if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") {
    throw new Error(`config.json: activation_function ${act} is not supported (only gelu_new)`);
  }
  if (raw.n_inner != null && raw.n_inner !== 4 * c.n_embd) {
    throw new Error(`config.json: n_inner ${raw.n_inner} is not 4·n_embd (${4 * c.n_embd})`);
  }
  if (raw.scale_attn_by_inverse_layer_idx || raw.add_cross_attention) {
    throw new Error(
      "config.json: scale_attn_by_inverse_layer_idx / add_cross_attention are not supported",
    );
  }
  return c;
}

/** config.json of a GPT-2 model as Hugging Face's GPT2Config writes it (tied embeddings). */
export function gpt2ConfigToHf(c: GPTConfig): Record<string, unknown> {
  return {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    ...c,
    layer_norm_epsilon: c.layer_norm_epsilon ?? 1e-5,
    tie_word_embeddings: true,
    activation_function: "gelu_new",
  };
}

/**
 * Parameters a GPT-2 config implies (biases and norms included), counted by formula, without
 * building anything: what `checkConfigFitsFiles` compares with the weights' bytes. The same
 * count as {@link gptParameterCount}.
 */
export function gpt2ParamCount(c: GPTConfig): number {
  return gptParameterCount(c);
}

/** The dimensions of a GPT-2 config that size its weights, for error messages. */
export function gpt2Dims(c: GPTConfig): Record<string, number> {
  return {
    vocab_size: c.vocab_size,
    n_positions: c.n_positions,
    n_embd: c.n_embd,
    n_layer: c.n_layer,
  };
}

/** The shape of every GPT-2 parameter, by canonical name. */
export function gpt2Expected(c: GPTConfig): Map<string, number[]> {
  const C = c.n_embd;
  const m = new Map<string, number[]>([
    ["transformer.wte.weight", [c.vocab_size, C]],
    ["transformer.wpe.weight", [c.n_positions, C]],
    ["transformer.ln_f.weight", [C]],
    ["transformer.ln_f.bias", [C]],
  ]);
  for (let i = 0; i < c.n_layer; i++) {
    const p = `transformer.h.${i}`;
    for (const ln of ["ln_1", "ln_2"]) {
      m.set(`${p}.${ln}.weight`, [C]);
      m.set(`${p}.${ln}.bias`, [C]);
    }
    for (
      const [n, i0, o] of [
        ["attn.c_attn", C, 3 * C],
        ["attn.c_proj", C, C],
        ["mlp.c_fc", C, 4 * C],
        ["mlp.c_proj", 4 * C, C],
      ] as const
    ) {
      m.set(`${p}.${n}.weight`, [i0, o]);
      m.set(`${p}.${n}.bias`, [o]);
    }
  }
  return m;
}

/** GPT-2 stored name → canonical (`transformer.` prefix optional; buffers ignored). */
export function gpt2Canonical(s: string): string | null {
  if (s === "lm_head.weight") return null; // tied to wte
  if (/\.attn\.(masked_)?bias$/.test(s)) return null; // causal-mask buffers of old checkpoints
  return s.startsWith("transformer.") ? s : `transformer.${s}`;
}

/** A GPT from checked weights (Conv1D linears [in, out], quantized if the loader quantizes). */
export async function buildGpt2(b: WeightLoader, c: GPTConfig): Promise<GPT> {
  const eps = c.layer_norm_epsilon ?? 1e-5;
  const ln = async (p: string) =>
    new LayerNorm(await b.tensor(`${p}.weight`), await b.tensor(`${p}.bias`), eps);
  const wte = await b.tensor("transformer.wte.weight");
  const wpe = await b.tensor("transformer.wpe.weight");
  const h: Block[] = [];
  for (let i = 0; i < c.n_layer; i++) {
    const p = `transformer.h.${i}`;
    h.push(
      new Block(c, b.device, {
        ln_1: await ln(`${p}.ln_1`),
        attn: {
          c_attn: await b.linear(`${p}.attn.c_attn`, "in_out", true),
          c_proj: await b.linear(`${p}.attn.c_proj`, "in_out", true),
        },
        ln_2: await ln(`${p}.ln_2`),
        mlp: {
          c_fc: await b.linear(`${p}.mlp.c_fc`, "in_out", true),
          c_proj: await b.linear(`${p}.mlp.c_proj`, "in_out", true),
        },
      }),
    );
  }
  const ln_f = await ln("transformer.ln_f");
  return GPT.fromParts(c, b.device, { wte, wpe, h, ln_f });
}
