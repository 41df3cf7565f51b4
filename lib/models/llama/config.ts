/**
 * Llama's hyper-parameters (Hugging Face `LlamaConfig` field names, rotary scaling included),
 * their resolved head counts, and their checks.
 *
 * @module
 */

/** Rotary scaling of long-context Llama checkpoints (`rope_scaling` in config.json). */
export interface RopeScaling {
  /** `"linear"` or `"llama3"` (`type` in older configs). */
  rope_type?: string;
  /** Older name of rope_type. */
  type?: string;
  /** Scaling factor. */
  factor: number;
  /** llama3: low-frequency factor. */
  low_freq_factor?: number;
  /** llama3: high-frequency factor. */
  high_freq_factor?: number;
  /** llama3: the context length the model was pretrained with. */
  original_max_position_embeddings?: number;
}

/** Llama hyper-parameters, with Hugging Face `LlamaConfig` field names. */
export interface LlamaConfig {
  /** Vocabulary size. */
  vocab_size: number;
  /** Width C of the residual stream. */
  hidden_size: number;
  /** Width of the SwiGLU MLP. */
  intermediate_size: number;
  /** Number of blocks. */
  num_hidden_layers: number;
  /** Query heads. */
  num_attention_heads: number;
  /** Key/value heads (grouped-query attention). Default num_attention_heads. */
  num_key_value_heads?: number;
  /** Width of one head. Default hidden_size / num_attention_heads. */
  head_dim?: number;
  /** RMSNorm epsilon. Default 1e-6. */
  rms_norm_eps?: number;
  /** RoPE base. Default 10000. */
  rope_theta?: number;
  /** Longest sequence. */
  max_position_embeddings: number;
  /** Output projection shared with the token embedding. Default false. */
  tie_word_embeddings?: boolean;
  /** Biases on q/k/v/o projections. Default false. */
  attention_bias?: boolean;
  /** Biases on the MLP projections. Default false. */
  mlp_bias?: boolean;
  /** Long-context RoPE scaling (`linear` or `llama3`), or null. */
  rope_scaling?: RopeScaling | null;
}

/** Resolved head counts and widths of a config. */
export function llamaDims(c: LlamaConfig): { nh: number; nkv: number; hd: number } {
  const nh = c.num_attention_heads;
  const nkv = c.num_key_value_heads ?? nh;
  const hd = c.head_dim ?? c.hidden_size / nh;
  return { nh, nkv, hd };
}

/** Checks a config and names the first problem. */
export function validateLlamaConfig(c: LlamaConfig): void {
  for (
    const k of [
      "vocab_size",
      "hidden_size",
      "intermediate_size",
      "num_hidden_layers",
      "num_attention_heads",
      "max_position_embeddings",
    ] as const
  ) {
    if (!Number.isInteger(c[k]) || c[k] < 1) {
      throw new RangeError(`LlamaConfig.${k} = ${c[k]}: must be a positive integer`);
    }
  }
  const { nh, nkv, hd } = llamaDims(c);
  if (!Number.isInteger(nkv) || nkv < 1 || nh % nkv !== 0) {
    throw new RangeError(
      `LlamaConfig: num_attention_heads ${nh} is not a multiple of num_key_value_heads ${nkv}`,
    );
  }
  if (!Number.isInteger(hd) || hd < 2 || hd % 2 !== 0) {
    throw new RangeError(
      `LlamaConfig: head_dim ${hd} (hidden_size ${c.hidden_size} / num_attention_heads ${nh})` +
        ` must be an even integer`,
    );
  }
  const rs = c.rope_scaling;
  if (rs) {
    const t = rs.rope_type ?? rs.type;
    if (t !== "linear" && t !== "llama3" && t !== "default") {
      throw new RangeError(`LlamaConfig: rope_scaling type ${JSON.stringify(t)} is not supported`);
    }
    if (t !== "default" && !(rs.factor > 0)) {
      throw new RangeError(`LlamaConfig: rope_scaling.factor ${rs.factor} must be > 0`);
    }
  }
}
