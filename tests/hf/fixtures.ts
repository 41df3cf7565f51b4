/**
 * Small Hugging Face checkpoints written by the tests themselves, in exact HF layout and naming
 * (config.json fields of GPT2Config / LlamaConfig, safetensors keys of GPT2LMHeadModel /
 * LlamaForCausalLM, F32/F16/BF16, optional sharding with model.safetensors.index.json), random
 * weights, and tokenizer files. Also the float64 reference forwards of both architectures,
 * written plainly from the papers / transformers' modeling code, independent of lib/.
 */

import { type Backend, Rng, Tensor } from "../../lib/mod.ts";
import { type Dtype, tensorFromArray, writeSafetensors } from "../../lib/io/mod.ts";
import { fromBf16Bits, fromF16Bits, toBf16Bits, toF16Bits } from "../../lib/quant/f16.ts";

/** Named weights as float64 numbers (already rounded to the stored dtype) with shapes. */
export type Weights = Map<string, { shape: number[]; data: number[] }>;

/** Random N(0, std²) data rounded to `dtype`'s precision. */
export function randWeights(rng: Rng, n: number, std: number, dtype: Dtype): number[] {
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = std * rng.normal();
  return Array.from(roundTo(f, dtype));
}

function roundTo(f: Float32Array, dtype: Dtype): Float32Array {
  if (dtype === "F16") return fromF16Bits(toF16Bits(f));
  if (dtype === "BF16") return fromBf16Bits(toBf16Bits(f));
  return f;
}

/** Options of {@link writeCheckpoint}. */
export interface WriteOptions {
  /** Stored dtype. Default F32. */
  dtype?: Dtype;
  /** Number of shards (1: model.safetensors). Default 1. */
  shards?: number;
  /** Rename stored keys (e.g. drop `transformer.`). */
  rename?: (name: string) => string;
  /** Extra stored tensors (buffers such as `h.0.attn.bias`). */
  extra?: Map<string, { shape: number[]; data: number[] }>;
}

/** Writes config.json and the weights of an HF folder. */
export async function writeCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  w: Weights,
  o: WriteOptions = {},
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2));
  const dtype = o.dtype ?? "F32";
  const all = [...w, ...(o.extra ?? [])];
  const enc = (data: number[]) => {
    const f = Float32Array.from(data);
    return dtype === "F16" ? toF16Bits(f) : dtype === "BF16" ? toBf16Bits(f) : f;
  };
  const shards = o.shards ?? 1;
  const name = (s: number) =>
    shards === 1
      ? "model.safetensors"
      : `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards; s++) {
    const part = new Map();
    all.forEach(([n, t], i) => {
      if (i % shards !== s) return;
      const key = o.rename ? o.rename(n) : n;
      part.set(key, tensorFromArray(dtype, t.shape, enc(t.data)));
      weightMap[key] = name(s);
      total += t.data.length * (dtype === "F32" ? 4 : 2);
    });
    await writeSafetensors(`${dir}/${name(s)}`, part, { format: "pt" });
  }
  if (shards > 1) {
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer files

/** GPT-2's bytes_to_unicode: byte → printable character, in GPT-2's id order. */
export function bytesToUnicode(): { bytes: number[]; chars: string[] } {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const cs = [...bytes];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      cs.push(256 + n++);
    }
  }
  return { bytes, chars: cs.map((c) => String.fromCodePoint(c)) };
}

/**
 * A mini GPT-2 vocabulary: the 256 byte tokens with GPT-2's own ids (so "!" is 0 and "Ġ" 220,
 * as in the real vocab.json), then one token per merge (256, 257, …), then `<|endoftext|>`.
 */
export const GPT2_MERGES = [
  "H e", // 256
  "l l", // 257
  "He ll", // 258
  "Hell o", // 259 Hello
  "Ġ w", // 260
  "o r", // 261
  "Ġw or", // 262
  "Ġwor l", // 263
  "Ġworl d", // 264 Ġworld
  "Ġ Ġ", // 265
  "Ġ b", // 266
];

/** vocab.json of {@link GPT2_MERGES} (eot = 267). */
export function gpt2Vocab(): Record<string, number> {
  const { chars } = bytesToUnicode();
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => (vocab[c] = i));
  GPT2_MERGES.forEach((m, i) => (vocab[m.replace(" ", "")] = 256 + i));
  vocab["<|endoftext|>"] = 256 + GPT2_MERGES.length;
  return vocab;
}

/** Writes vocab.json + merges.txt (GPT-2's files). */
export async function writeGpt2TokenizerFiles(dir: string): Promise<void> {
  await Deno.writeTextFile(`${dir}/vocab.json`, JSON.stringify(gpt2Vocab()));
  await Deno.writeTextFile(`${dir}/merges.txt`, "#version: 0.2\n" + GPT2_MERGES.join("\n") + "\n");
}

/**
 * A Llama-2-style tokenizer.json: SentencePiece BPE with byte fallback (`<0x00>`…`<0xFF>` at
 * ids 3…258), `▁` for spaces, `<unk>` 0, `<s>` 1, `</s>` 2, then ▁ 259, t 260, h 261, e 262,
 * a 263, ▁t 264, he 265, ▁the 266.
 */
export function llamaTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) {
    vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  }
  ["▁", "t", "h", "e", "a", "▁t", "he", "▁the"].forEach((t, i) => (vocab[t] = 259 + i));
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: ["▁ t", "h e", "▁t he"],
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

/** A tiny GPT-2 config.json as transformers writes it. */
export function gpt2Config(o: Partial<Record<string, unknown>> = {}): Record<string, unknown> {
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    activation_function: "gelu_new",
    n_embd: 16,
    n_head: 2,
    n_layer: 2,
    n_positions: 16,
    n_ctx: 16,
    n_inner: null,
    vocab_size: 272,
    layer_norm_epsilon: 1e-5,
    bos_token_id: 267,
    eos_token_id: 267,
    torch_dtype: "float32",
    ...o,
  };
}

/** GPT2LMHeadModel weights (`transformer.` names, Conv1D [in, out]). */
export function gpt2Weights(cfg: Record<string, unknown>, seed: number, dtype: Dtype): Weights {
  const rng = new Rng(seed);
  const C = cfg.n_embd as number, V = cfg.vocab_size as number, P = cfg.n_positions as number;
  const w: Weights = new Map();
  const put = (n: string, shape: number[], std: number, mean = 0) => {
    const raw = randWeights(rng, shape.reduce((a, b) => a * b, 1), std, "F32").map((x) => x + mean);
    w.set(n, { shape, data: Array.from(roundTo(Float32Array.from(raw), dtype)) });
  };
  put("transformer.wte.weight", [V, C], 0.3);
  put("transformer.wpe.weight", [P, C], 0.1);
  for (let i = 0; i < (cfg.n_layer as number); i++) {
    const p = `transformer.h.${i}`;
    put(`${p}.ln_1.weight`, [C], 0.1, 1);
    put(`${p}.ln_1.bias`, [C], 0.1);
    put(`${p}.attn.c_attn.weight`, [C, 3 * C], 0.3);
    put(`${p}.attn.c_attn.bias`, [3 * C], 0.1);
    put(`${p}.attn.c_proj.weight`, [C, C], 0.2);
    put(`${p}.attn.c_proj.bias`, [C], 0.1);
    put(`${p}.ln_2.weight`, [C], 0.1, 1);
    put(`${p}.ln_2.bias`, [C], 0.1);
    put(`${p}.mlp.c_fc.weight`, [C, 4 * C], 0.3);
    put(`${p}.mlp.c_fc.bias`, [4 * C], 0.1);
    put(`${p}.mlp.c_proj.weight`, [4 * C, C], 0.15);
    put(`${p}.mlp.c_proj.bias`, [C], 0.1);
  }
  put("transformer.ln_f.weight", [C], 0.1, 1);
  put("transformer.ln_f.bias", [C], 0.1);
  return w;
}

/** A tiny Llama config.json as transformers writes it (GQA: 4 query heads, 2 kv heads). */
export function llamaConfig(o: Partial<Record<string, unknown>> = {}): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: "silu",
    hidden_size: 32,
    initializer_range: 0.02,
    intermediate_size: 48,
    max_position_embeddings: 64,
    mlp_bias: false,
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 2,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 500.0,
    tie_word_embeddings: false,
    torch_dtype: "float32",
    vocab_size: 272,
    ...o,
  };
}

/** LlamaForCausalLM weights (nn.Linear [out, in]). */
export function llamaWeights(cfg: Record<string, unknown>, seed: number, dtype: Dtype): Weights {
  const rng = new Rng(seed);
  const C = cfg.hidden_size as number, I = cfg.intermediate_size as number;
  const V = cfg.vocab_size as number, nh = cfg.num_attention_heads as number;
  const nkv = (cfg.num_key_value_heads as number) ?? nh;
  const hd = (cfg.head_dim as number) ?? C / nh;
  const w: Weights = new Map();
  const put = (n: string, shape: number[], std: number, mean = 0) => {
    const raw = randWeights(rng, shape.reduce((a, b) => a * b, 1), std, "F32").map((x) => x + mean);
    w.set(n, { shape, data: Array.from(roundTo(Float32Array.from(raw), dtype)) });
  };
  put("model.embed_tokens.weight", [V, C], 1);
  for (let i = 0; i < (cfg.num_hidden_layers as number); i++) {
    const p = `model.layers.${i}`;
    put(`${p}.input_layernorm.weight`, [C], 0.1, 1);
    put(`${p}.self_attn.q_proj.weight`, [nh * hd, C], 0.3);
    put(`${p}.self_attn.k_proj.weight`, [nkv * hd, C], 0.3);
    put(`${p}.self_attn.v_proj.weight`, [nkv * hd, C], 0.2);
    put(`${p}.self_attn.o_proj.weight`, [C, nh * hd], 0.2);
    put(`${p}.post_attention_layernorm.weight`, [C], 0.1, 1);
    put(`${p}.mlp.gate_proj.weight`, [I, C], 0.3);
    put(`${p}.mlp.up_proj.weight`, [I, C], 0.2);
    put(`${p}.mlp.down_proj.weight`, [C, I], 0.15);
  }
  put("model.norm.weight", [C], 0.1, 1);
  if (!cfg.tie_word_embeddings) put("lm_head.weight", [V, C], 0.2);
  return w;
}

// ---------------------------------------------------------------------------------------------
// Float64 references

type Vec = number[];

/** y = W x for W [out, in] (row-major). */
function matvecOutIn(W: Vec, x: Vec, out: number, inp: number): Vec {
  const y = new Array(out).fill(0);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inp; i++) s += W[o * inp + i] * x[i];
    y[o] = s;
  }
  return y;
}

/** y = x W + b for W [in, out] (GPT-2's Conv1D). */
function matvecInOut(W: Vec, b: Vec, x: Vec, inp: number, out: number): Vec {
  const y = [...b];
  for (let i = 0; i < inp; i++) for (let o = 0; o < out; o++) y[o] += x[i] * W[i * out + o];
  return y;
}

function softmaxRow(s: Vec): Vec {
  const m = Math.max(...s);
  const e = s.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** Llama forward in float64: logits [T][V] of one sequence. */
export function llamaRef(cfg: Record<string, unknown>, w: Weights, ids: number[]): Vec[] {
  const g = (n: string) => w.get(n)!.data;
  const C = cfg.hidden_size as number, I = cfg.intermediate_size as number;
  const V = cfg.vocab_size as number, nh = cfg.num_attention_heads as number;
  const nkv = (cfg.num_key_value_heads as number) ?? nh;
  const hd = (cfg.head_dim as number) ?? C / nh;
  const eps = cfg.rms_norm_eps as number, theta = cfg.rope_theta as number;
  const T = ids.length;
  const rms = (x: Vec, wt: Vec) => {
    const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
    const r = 1 / Math.sqrt(ms + eps);
    return x.map((v, i) => v * r * wt[i]);
  };
  // RoPE, "rotate half": pairs (i, i + hd/2) rotate by angle t·θ^(-2i/hd).
  const rope = (v: Vec, t: number) => {
    const out = [...v];
    for (let i = 0; i < hd / 2; i++) {
      const a = t * Math.pow(theta, -(2 * i) / hd);
      const x1 = v[i], x2 = v[i + hd / 2];
      out[i] = x1 * Math.cos(a) - x2 * Math.sin(a);
      out[i + hd / 2] = x2 * Math.cos(a) + x1 * Math.sin(a);
    }
    return out;
  };
  let xs: Vec[] = ids.map((id) => g("model.embed_tokens.weight").slice(id * C, (id + 1) * C));
  for (let l = 0; l < (cfg.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}`;
    const hs = xs.map((x) => rms(x, g(`${p}.input_layernorm.weight`)));
    const q = hs.map((h) => matvecOutIn(g(`${p}.self_attn.q_proj.weight`), h, nh * hd, C));
    const k = hs.map((h) => matvecOutIn(g(`${p}.self_attn.k_proj.weight`), h, nkv * hd, C));
    const v = hs.map((h) => matvecOutIn(g(`${p}.self_attn.v_proj.weight`), h, nkv * hd, C));
    const head = (vec: Vec, j: number) => vec.slice(j * hd, (j + 1) * hd);
    const ys: Vec[] = [];
    for (let t = 0; t < T; t++) {
      const y: number[] = [];
      for (let hh = 0; hh < nh; hh++) {
        const kvh = Math.floor(hh / (nh / nkv)); // repeat_kv: kv head j serves n_rep query heads
        const qt = rope(head(q[t], hh), t);
        const s: number[] = [];
        for (let u = 0; u <= t; u++) {
          const ku = rope(head(k[u], kvh), u);
          s.push(qt.reduce((a, x, i) => a + x * ku[i], 0) / Math.sqrt(hd));
        }
        const pr = softmaxRow(s);
        const o = new Array(hd).fill(0);
        for (let u = 0; u <= t; u++) {
          const vu = head(v[u], kvh);
          for (let i = 0; i < hd; i++) o[i] += pr[u] * vu[i];
        }
        y.push(...o);
      }
      ys.push(y);
    }
    xs = xs.map((x, t) => {
      const a = matvecOutIn(g(`${p}.self_attn.o_proj.weight`), ys[t], C, nh * hd);
      return x.map((xv, i) => xv + a[i]);
    });
    xs = xs.map((x) => {
      const h = rms(x, g(`${p}.post_attention_layernorm.weight`));
      const gate = matvecOutIn(g(`${p}.mlp.gate_proj.weight`), h, I, C);
      const up = matvecOutIn(g(`${p}.mlp.up_proj.weight`), h, I, C);
      const act = gate.map((z, i) => (z / (1 + Math.exp(-z))) * up[i]); // SiLU(gate) · up
      const d = matvecOutIn(g(`${p}.mlp.down_proj.weight`), act, C, I);
      return x.map((xv, i) => xv + d[i]);
    });
  }
  const headW = cfg.tie_word_embeddings ? g("model.embed_tokens.weight") : g("lm_head.weight");
  return xs.map((x) => matvecOutIn(headW, rms(x, g("model.norm.weight")), V, C));
}

/** GPT-2 forward in float64: logits [T][V] of one sequence. */
export function gpt2Ref(cfg: Record<string, unknown>, w: Weights, ids: number[]): Vec[] {
  const g = (n: string) => w.get(n)!.data;
  const C = cfg.n_embd as number, V = cfg.vocab_size as number, nh = cfg.n_head as number;
  const hd = C / nh, eps = cfg.layer_norm_epsilon as number;
  const ln = (x: Vec, p: string) => {
    const m = x.reduce((a, b) => a + b, 0) / C;
    const v = x.reduce((a, b) => a + (b - m) ** 2, 0) / C;
    return x.map((xv, i) =>
      ((xv - m) / Math.sqrt(v + eps)) * g(`${p}.weight`)[i] + g(`${p}.bias`)[i]
    );
  };
  const gelu = (x: number) =>
    0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  let xs: Vec[] = ids.map((id, t) =>
    g("transformer.wte.weight").slice(id * C, (id + 1) * C).map((v, i) =>
      v + g("transformer.wpe.weight")[t * C + i]
    )
  );
  for (let l = 0; l < (cfg.n_layer as number); l++) {
    const p = `transformer.h.${l}`;
    const qkv = xs.map((x) =>
      matvecInOut(
        g(`${p}.attn.c_attn.weight`),
        g(`${p}.attn.c_attn.bias`),
        ln(x, `${p}.ln_1`),
        C,
        3 * C,
      )
    );
    const ys = xs.map((_, t) => {
      const y: number[] = [];
      for (let hh = 0; hh < nh; hh++) {
        const q = qkv[t].slice(hh * hd, (hh + 1) * hd);
        const s: number[] = [];
        for (let u = 0; u <= t; u++) {
          const k = qkv[u].slice(C + hh * hd, C + (hh + 1) * hd);
          s.push(q.reduce((a, x, i) => a + x * k[i], 0) / Math.sqrt(hd));
        }
        const pr = softmaxRow(s);
        const o = new Array(hd).fill(0);
        for (let u = 0; u <= t; u++) {
          for (let i = 0; i < hd; i++) o[i] += pr[u] * qkv[u][2 * C + hh * hd + i];
        }
        y.push(...o);
      }
      return y;
    });
    xs = xs.map((x, t) => {
      const a = matvecInOut(g(`${p}.attn.c_proj.weight`), g(`${p}.attn.c_proj.bias`), ys[t], C, C);
      return x.map((xv, i) => xv + a[i]);
    });
    xs = xs.map((x) => {
      const h = matvecInOut(
        g(`${p}.mlp.c_fc.weight`),
        g(`${p}.mlp.c_fc.bias`),
        ln(x, `${p}.ln_2`),
        C,
        4 * C,
      )
        .map(gelu);
      const m = matvecInOut(g(`${p}.mlp.c_proj.weight`), g(`${p}.mlp.c_proj.bias`), h, 4 * C, C);
      return x.map((xv, i) => xv + m[i]);
    });
  }
  return xs.map((x) => matvecOutIn(g("transformer.wte.weight"), ln(x, "transformer.ln_f"), V, C) // tied head
  );
}

/** Largest |got - want| over logits, and the largest |want|. */
export function maxErr(got: ArrayLike<number>, want: number[][]): { err: number; scale: number } {
  const flat = want.flat();
  let err = 0, scale = 0;
  for (let i = 0; i < flat.length; i++) {
    err = Math.max(err, Math.abs(got[i] - flat[i]));
    scale = Math.max(scale, Math.abs(flat[i]));
  }
  if (got.length !== flat.length) throw new Error(`length ${got.length} != ${flat.length}`);
  return { err, scale };
}

/** The logits of `model` for one row of ids on `dev`, read back (inputs and outputs disposed). */
export async function logits(
  dev: Backend,
  model: { forward(ids: Tensor): Tensor },
  ids: number[],
): Promise<Float32Array> {
  const x = Tensor.fromArray(Int32Array.from(ids), [1, ids.length], { device: dev });
  const y = model.forward(x);
  const out = (await y.toArray()) as Float32Array;
  x.dispose();
  y.dispose();
  return out;
}
