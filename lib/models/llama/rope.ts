/**
 * Rotary position embeddings of Llama (Hugging Face's "rotate half" convention): the inverse
 * frequencies θ^(-2i/hd), with `linear` or `llama3` long-context scaling, and their cos/sin
 * tables, in float32 as transformers computes them.
 *
 * @module
 */

import { type LlamaConfig, llamaDims } from "./config.ts";

/**
 * RoPE inverse frequencies θ^(-2i/hd), i < hd/2, in float32 as transformers computes them,
 * with `linear` (÷ factor) or `llama3` (wavelength-dependent) scaling applied.
 */
export function ropeInvFreq(c: LlamaConfig): Float32Array {
  const { hd } = llamaDims(c);
  const theta = c.rope_theta ?? 10000;
  const inv = new Float32Array(hd / 2);
  for (let i = 0; i < hd / 2; i++) {
    inv[i] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / hd)));
  }
  const rs = c.rope_scaling;
  const t = rs ? rs.rope_type ?? rs.type : undefined;
  if (rs && t === "linear") {
    for (let i = 0; i < inv.length; i++) inv[i] /= rs.factor;
  } else if (rs && t === "llama3") {
    // transformers' _compute_llama3_parameters.
    const low = rs.low_freq_factor ?? 1, high = rs.high_freq_factor ?? 4;
    const old = rs.original_max_position_embeddings ?? 8192;
    const lowWave = old / low, highWave = old / high;
    for (let i = 0; i < inv.length; i++) {
      const wave = (2 * Math.PI) / inv[i];
      let f = wave > lowWave ? inv[i] / rs.factor : inv[i];
      if (!(wave < highWave) && !(wave > lowWave)) {
        const smooth = (old / wave - low) / (high - low);
        f = (1 - smooth) * (f / rs.factor) + smooth * f;
      }
      inv[i] = f;
    }
  }
  return inv;
}

/** cos and sin tables [T, hd] (HF layout: the hd/2 frequencies twice), float32. */
export function ropeTables(c: LlamaConfig, T: number): { cos: Float32Array; sin: Float32Array } {
  const { hd } = llamaDims(c);
  const inv = ropeInvFreq(c);
  const cos = new Float32Array(T * hd), sin = new Float32Array(T * hd);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < hd / 2; i++) {
      const a = Math.fround(t * inv[i]);
      cos[t * hd + i] = cos[t * hd + i + hd / 2] = Math.cos(a);
      sin[t * hd + i] = sin[t * hd + i + hd / 2] = Math.sin(a);
    }
  }
  return { cos, sin };
}
