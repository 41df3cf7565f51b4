/**
 * Llama (Hugging Face `LlamaForCausalLM`) in TypeScript: token embedding, n pre-RMSNorm blocks
 * of causal self-attention with rotary position embeddings (RoPE, `rope_theta`) and grouped-query
 * attention (`num_key_value_heads`), a SwiGLU MLP, a final RMSNorm and an output projection
 * (`lm_head`, or the token embedding when `tie_word_embeddings`).
 *
 * Every piece is composed of differentiable ops from lib/ops, so backward comes for free:
 * - RMSNorm: x / √(mean(x²) + ε) · w (lib/nn/norms.ts).
 * - RoPE (Hugging Face's "rotate half" convention): x·cos + rotate_half(x)·sin, with
 *   rotate_half(x) = [-x₂, x₁] computed as x·R for a fixed signed permutation R [hd, hd]
 *   (exact: each output is one input times ±1 plus zeros); tables in rope.ts.
 * - GQA: each key/value head is repeated for its num_heads / num_kv_heads query heads
 *   (broadcastTo; its backward sums the copies), as `repeat_kv` does.
 * - SiLU: x · σ(x), with σ(x) = exp(-relu(-x)) / (1 + exp(-|x|)): no exp ever overflows, so
 *   neither value nor gradient becomes NaN for large |x| (lib/nn/activations.ts).
 *
 * Names are Hugging Face's (`model.layers.0.self_attn.q_proj.weight`, weights [out, in] as
 * nn.Linear), so checkpoints and PEFT adapters load with no renaming.
 *
 * @module
 */

import type { Backend } from "../../backend/backend.ts";
import {
  add,
  attendAll,
  broadcastTo,
  causalSelfAttention,
  concat,
  type CrossEntropyOptions,
  embedding,
  matmul,
  mul,
  narrow,
} from "../../ops/mod.ts";
import { lmLoss } from "../../nn/lm_loss.ts";
import { checkpoint } from "../../autograd/checkpoint.ts";
import { Rng } from "../../rng.ts";
import { fmtShape, scope, Tensor } from "../../tensor.ts";
import { silu } from "../../nn/activations.ts";
import {
  type BlockAdapters,
  blockIndexOf,
  type CausalLM,
  type ForwardCachedOptions,
  type GradCheckpointing,
  type KVCache,
  type OutputWeight,
  type PeftLayout,
  runCachedBlocks,
} from "../../nn/causal_lm.ts";
import { Linear, type LinearLike } from "../../nn/linear.ts";
import { RMSNorm } from "../../nn/norms.ts";
import { type LlamaConfig, llamaDims, validateLlamaConfig } from "./config.ts";
import { ropeTables } from "./rope.ts";

/** The modules of one {@link LlamaBlock}. */
export interface LlamaBlockParts {
  /** Pre-attention RMSNorm. */
  input_layernorm: RMSNorm;
  /** Attention projections. */
  self_attn: { q_proj: LinearLike; k_proj: LinearLike; v_proj: LinearLike; o_proj: LinearLike };
  /** Pre-MLP RMSNorm. */
  post_attention_layernorm: RMSNorm;
  /** SwiGLU MLP: down(silu(gate(x)) · up(x)). */
  mlp: { gate_proj: LinearLike; up_proj: LinearLike; down_proj: LinearLike };
}

/** Per-forward constants shared by the blocks (made by the model for each length T). */
export interface Rope {
  /** cos table [T, 1, hd]. */
  cos: Tensor;
  /** sin table [T, 1, hd]. */
  sin: Tensor;
  /** The signed permutation R [hd, hd] with x·R = rotate_half(x). */
  rot: Tensor;
}

/** One Llama block: x + attn(norm(x)), then + mlp(norm(x)). */
export class LlamaBlock {
  /** Pre-attention RMSNorm. */
  input_layernorm: RMSNorm;
  /** q_proj [nh·hd, C], k_proj and v_proj [nkv·hd, C], o_proj [C, nh·hd] (all [out, in]). */
  self_attn: { q_proj: LinearLike; k_proj: LinearLike; v_proj: LinearLike; o_proj: LinearLike };
  /** Pre-MLP RMSNorm. */
  post_attention_layernorm: RMSNorm;
  /** gate_proj and up_proj [I, C], down_proj [C, I]. */
  mlp: { gate_proj: LinearLike; up_proj: LinearLike; down_proj: LinearLike };
  /** Optional bottleneck adapters (see lib/peft/bottleneck.ts). */
  adapters: BlockAdapters = {};

  /** A block made of given modules. */
  constructor(readonly config: LlamaConfig, parts: LlamaBlockParts) {
    this.input_layernorm = parts.input_layernorm;
    this.self_attn = parts.self_attn;
    this.post_attention_layernorm = parts.post_attention_layernorm;
    this.mlp = parts.mlp;
  }

  /** A fresh block: N(0, 0.02²) weights (transformers' initializer_range), unit norms. */
  static init(config: LlamaConfig, device: Backend, rng: Rng): LlamaBlock {
    const C = config.hidden_size, I = config.intermediate_size;
    const { nh, nkv, hd } = llamaDims(config);
    const eps = config.rms_norm_eps ?? 1e-6;
    const ab = config.attention_bias ?? false, mb = config.mlp_bias ?? false;
    const lin = (i: number, o: number, bias: boolean) =>
      Linear.init(i, o, { device, rng, layout: "out_in", bias });
    return new LlamaBlock(config, {
      input_layernorm: RMSNorm.init(C, device, eps),
      self_attn: {
        q_proj: lin(C, nh * hd, ab),
        k_proj: lin(C, nkv * hd, ab),
        v_proj: lin(C, nkv * hd, ab),
        o_proj: lin(nh * hd, C, ab),
      },
      post_attention_layernorm: RMSNorm.init(C, device, eps),
      mlp: { gate_proj: lin(C, I, mb), up_proj: lin(C, I, mb), down_proj: lin(I, C, mb) },
    });
  }

  /** x: [B, T, C] → [B, T, C]. */
  forward(x: Tensor, rope: Rope): Tensor {
    return this.forwardCached(x, rope, null).y;
  }

  /**
   * With cached (rotated, unrepeated) keys and values of earlier positions: x: [B, Tn, C] at the
   * positions of `rope` → [B, Tn, C] and this block's keys and values of all positions so far,
   * [B, Tp + Tn, nkv·hd]. Without a cache this is {@link LlamaBlock.forward}; with one, Tn = 1.
   */
  forwardCached(x: Tensor, rope: Rope, past: { k: Tensor; v: Tensor } | null): {
    y: Tensor;
    k: Tensor;
    v: Tensor;
  } {
    const [B, T] = x.shape;
    const { nh, nkv, hd } = llamaDims(this.config);
    const h = this.input_layernorm.forward(x);
    const rotate = (t: Tensor, heads: number) => {
      const t4 = t.reshape([B, T, heads, hd]);
      const r = add(mul(t4, rope.cos), mul(matmul(t4, rope.rot), rope.sin));
      return r.reshape([B, T, heads * hd]);
    };
    const repeat = (t: Tensor) => {
      if (nkv === nh) return t;
      const L = t.shape[1];
      const t5 = t.reshape([B, L, nkv, 1, hd]);
      return broadcastTo(t5, [B, L, nkv, nh / nkv, hd]).reshape([B, L, nh * hd]);
    };
    const q = rotate(this.self_attn.q_proj.forward(h), nh);
    let k = rotate(this.self_attn.k_proj.forward(h), nkv);
    let v = this.self_attn.v_proj.forward(h);
    let y: Tensor;
    if (!past) {
      y = causalSelfAttention(q, repeat(k), repeat(v), nh); // [B, T, nh·hd]
    } else {
      if (T !== 1) {
        throw new RangeError(`LlamaBlock.forwardCached: ${T} new positions with a cache (1 only)`);
      }
      k = concat(past.k, k, 1);
      v = concat(past.v, v, 1);
      y = attendAll(q, repeat(k), repeat(v), nh);
    }
    return { y: this.afterAttention(x, y), k, v };
  }

  /** The block after its attention: projection, adapters, residual, and the MLP. */
  private afterAttention(x: Tensor, y: Tensor): Tensor {
    let a = this.self_attn.o_proj.forward(y);
    if (this.adapters.attn) a = this.adapters.attn.forward(a);
    x = add(x, a);
    const h2 = this.post_attention_layernorm.forward(x);
    const g = silu(this.mlp.gate_proj.forward(h2));
    let m = this.mlp.down_proj.forward(mul(g, this.mlp.up_proj.forward(h2)));
    if (this.adapters.mlp) m = this.adapters.mlp.forward(m);
    return add(x, m);
  }

  /** The linear layers by their path inside the block (`self_attn.q_proj`, …). */
  linears(): Map<string, LinearLike> {
    const a = this.self_attn, m = this.mlp;
    return new Map([
      ["self_attn.q_proj", a.q_proj],
      ["self_attn.k_proj", a.k_proj],
      ["self_attn.v_proj", a.v_proj],
      ["self_attn.o_proj", a.o_proj],
      ["mlp.gate_proj", m.gate_proj],
      ["mlp.up_proj", m.up_proj],
      ["mlp.down_proj", m.down_proj],
    ]);
  }
}

/** The parameters of a {@link Llama}. */
export interface LlamaParts {
  /** Token embedding [V, C]. */
  embed_tokens: Tensor;
  /** The blocks. */
  layers: LlamaBlock[];
  /** Final RMSNorm. */
  norm: RMSNorm;
  /** Output projection [V, C]; null when tied to the embedding. */
  lm_head: Tensor | null;
}

/** Options of {@link Llama.init}. */
export interface LlamaInitOptions {
  /** Backend for the parameters. */
  device: Backend;
  /** Seed of the initialisation. Default 0. */
  seed?: number;
}

/** The Llama model. */
export class Llama implements CausalLM {
  /** See {@link CausalLM.gradCheckpointing}. Default null. */
  gradCheckpointing: GradCheckpointing | null = null;
  /** Token embedding [V, C]. */
  embed_tokens: Tensor;
  /** The blocks. */
  layers: LlamaBlock[];
  /** Final RMSNorm. */
  norm: RMSNorm;
  /** Output projection [V, C], or null when tied to {@link embed_tokens}. */
  lm_head: Tensor | null;
  /** `"llama"`. */
  readonly arch = "llama";
  /** nn.Linear weights are [out, in]: PEFT's fan_in_fan_out is false; every block linear by default. */
  static readonly PEFT_LAYOUT: PeftLayout = {
    fanInFanOut: false,
    defaultTargets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  };
  /** {@link Llama.PEFT_LAYOUT}. */
  readonly peftLayout: PeftLayout = Llama.PEFT_LAYOUT;
  /** `model.norm.weight`. */
  readonly finalNormNames: readonly string[] = ["model.norm.weight"];
  #rope: Rope | null = null;

  /** A model made of given parameters (see {@link Llama.init} for a fresh one). */
  constructor(readonly config: LlamaConfig, readonly device: Backend, parts: LlamaParts) {
    validateLlamaConfig(config);
    if (parts.layers.length !== config.num_hidden_layers) {
      throw new RangeError(
        `Llama: ${parts.layers.length} blocks, num_hidden_layers is ${config.num_hidden_layers}`,
      );
    }
    if (!parts.lm_head !== (config.tie_word_embeddings ?? false)) {
      throw new RangeError(
        `Llama: lm_head must be ${parts.lm_head ? "null" : "given"} when tie_word_embeddings is ` +
          `${config.tie_word_embeddings ?? false}`,
      );
    }
    this.embed_tokens = parts.embed_tokens;
    this.layers = parts.layers;
    this.norm = parts.norm;
    this.lm_head = parts.lm_head;
  }

  /** A freshly initialised model (N(0, 0.02²) weights, seeded). */
  static init(config: LlamaConfig, o: LlamaInitOptions): Llama {
    validateLlamaConfig(config);
    const rng = new Rng(o.seed ?? 0), device = o.device;
    const { vocab_size: V, hidden_size: C } = config;
    const embed = Tensor.randn([V, C], { device, rng, std: 0.02 }).keep();
    const layers = Array.from(
      { length: config.num_hidden_layers },
      () => LlamaBlock.init(config, device, rng),
    );
    const norm = RMSNorm.init(C, device, config.rms_norm_eps ?? 1e-6);
    const head = config.tie_word_embeddings
      ? null
      : Tensor.randn([V, C], { device, rng, std: 0.02 }).keep();
    return new Llama(config, device, { embed_tokens: embed, layers, norm, lm_head: head });
  }

  /** vocab_size. */
  get vocabSize(): number {
    return this.config.vocab_size;
  }
  /** max_position_embeddings. */
  get contextLength(): number {
    return this.config.max_position_embeddings;
  }
  /** hidden_size. */
  get hiddenSize(): number {
    return this.config.hidden_size;
  }
  /** num_hidden_layers. */
  get numLayers(): number {
    return this.config.num_hidden_layers;
  }
  /** The blocks (`layers`). */
  get blocks(): readonly LlamaBlock[] {
    return this.layers;
  }
  /** `lm_head.weight`, or the embedding when tied. */
  get outputWeight(): OutputWeight {
    return this.lm_head
      ? { name: "lm_head.weight", tied: false }
      : { name: "model.embed_tokens.weight", tied: true };
  }
  /** `model.layers.<i>`. */
  blockPrefix(i: number): string {
    return `model.layers.${i}`;
  }
  /** Block index of `model.layers.<i>…`, else -1. */
  blockIndex(name: string): number {
    return blockIndexOf("model.layers", name);
  }

  /** All tensor parameters by Hugging Face name, in checkpoint order. */
  namedParameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    out.set("model.embed_tokens.weight", this.embed_tokens);
    this.layers.forEach((b, i) => {
      const pre = `model.layers.${i}`;
      out.set(`${pre}.input_layernorm.weight`, b.input_layernorm.weight);
      for (const [path, lin] of b.linears()) {
        if (path === "mlp.gate_proj") {
          out.set(`${pre}.post_attention_layernorm.weight`, b.post_attention_layernorm.weight);
        }
        for (const [n, t] of lin.parameters()) out.set(`${pre}.${path}.${n}`, t);
      }
    });
    out.set("model.norm.weight", this.norm.weight);
    if (this.lm_head) out.set("lm_head.weight", this.lm_head);
    return out;
  }

  /** Every block linear by module path (`model.layers.0.self_attn.q_proj`, …). */
  linears(): Map<string, LinearLike> {
    const out = new Map<string, LinearLike>();
    this.layers.forEach((b, i) => {
      for (const [p, l] of b.linears()) out.set(`model.layers.${i}.${p}`, l);
    });
    return out;
  }

  /** Replaces the linear at a module path. */
  setLinear(path: string, layer: LinearLike): void {
    const m = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)$/.exec(path);
    const blk = m ? this.layers[Number(m[1])] : undefined;
    const group = blk ? (blk as unknown as Record<string, Record<string, LinearLike>>)[m![2]] : {};
    if (!m || !blk || !Object.hasOwn(group, m[3])) {
      throw new Error(`Llama.setLinear: no linear layer at ${path}`);
    }
    group[m[3]] = layer;
  }

  /** Number of tensor parameters (a tied head counted once). */
  get numParameters(): number {
    let n = 0;
    for (const t of this.namedParameters().values()) n += t.size;
    return n;
  }

  /**
   * RoPE tables and constants for length T: the tables are computed once for the longest T
   * seen so far (doubling, at most contextLength) and narrowed per call.
   */
  private rope(T: number, p0 = 0): Rope {
    const { hd } = llamaDims(this.config);
    const device = this.device;
    let c = this.#rope;
    if (!c || c.cos.shape[0] < p0 + T) {
      c?.cos.dispose();
      c?.sin.dispose();
      const n = Math.min(this.contextLength, Math.max(p0 + T, 2 * (c?.cos.shape[0] ?? 0), 64));
      const { cos, sin } = ropeTables(this.config, n);
      let rot = c?.rot;
      if (!rot) {
        const r = new Float32Array(hd * hd); // x·rot = [-x₂, x₁]
        for (let j = 0; j < hd / 2; j++) {
          r[(j + hd / 2) * hd + j] = -1;
          r[j * hd + j + hd / 2] = 1;
        }
        rot = Tensor.fromArray(r, [hd, hd], { device }).keep();
      }
      c = this.#rope = {
        cos: Tensor.fromArray(cos, [n, 1, hd], { device }).keep(),
        sin: Tensor.fromArray(sin, [n, 1, hd], { device }).keep(),
        rot,
      };
    }
    if (p0 === 0 && c.cos.shape[0] === T) return c;
    return { ...c, cos: narrow(c.cos, 0, p0, T), sin: narrow(c.sin, 0, p0, T) };
  }

  /** ids: i32 [B, T] → logits [B, T, V]. */
  forward(ids: Tensor): Tensor {
    return this.head(this.hidden(ids));
  }

  /** The output projection (lm_head, or the tied embedding): h [..., C] → logits [..., V]. */
  private head(h: Tensor): Tensor {
    return matmul(h, this.lm_head ?? this.embed_tokens, { transB: true });
  }

  /** ids: i32 [B, T] → the final hidden states norm(blocks(…)) [B, T, C]. */
  private hidden(ids: Tensor): Tensor {
    if (ids.ndim !== 2 || ids.dtype !== "i32") {
      throw new RangeError(
        `Llama.forward: ids must be i32 [B, T], got ${ids.dtype} ${fmtShape(ids.shape)}`,
      );
    }
    const T = ids.shape[1];
    if (T > this.contextLength) {
      throw new RangeError(
        `Llama.forward: sequence length ${T} exceeds max_position_embeddings ${this.contextLength}`,
      );
    }
    const rope = this.rope(T);
    let x = embedding(ids, this.embed_tokens); // [B, T, C]
    const ck = this.gradCheckpointing;
    // Each block in its own scope: what no tape holds is freed at the block's end (evaluation
    // keeps one block's intermediates, not the whole model's).
    for (const b of this.layers) {
      const h = x;
      x = ck ? checkpoint((h) => b.forward(h, rope), h, ck.rngs) : scope(() => b.forward(h, rope));
    }
    return this.norm.forward(x); // [B, T, C]
  }

  /**
   * Logits of new positions given a {@link KVCache} of earlier ones (see `GPT.forwardCached`):
   * ids: i32 [B, Tn] at positions cache.length … → logits [B, Tn, V] and the extended cache
   * (rotated keys and values, unrepeated: [B, length, nkv·hd] per block).
   */
  forwardCached(
    ids: Tensor,
    cache: KVCache | null,
    opts: ForwardCachedOptions = {},
  ): { logits: Tensor; cache: KVCache } {
    let rope: Rope | null = null;
    const r = runCachedBlocks(
      "Llama.forwardCached",
      ids,
      cache,
      { length: this.contextLength, limit: "max_position_embeddings" },
      (p0, Tn) => {
        rope = this.rope(Tn, p0);
        return embedding(ids, this.embed_tokens); // [B, Tn, C]
      },
      this.layers.length,
      (i, x, past) => this.layers[i].forwardCached(x, rope!, past),
      opts,
    );
    return { logits: this.head(this.norm.forward(r.x)), cache: r.cache };
  }

  /**
   * Mean next-token cross-entropy: ids, targets: i32 [B, T] → scalar [] (nats per token). With
   * `options.count`, targets of -100 are masked out (see `CrossEntropyOptions`).
   */
  loss(ids: Tensor, targets: Tensor, options?: CrossEntropyOptions): Tensor {
    // In row chunks when the logits would not fit one buffer (lib/nn/lm_loss.ts).
    return lmLoss(this.hidden(ids), (h) => this.head(h), this.vocabSize, targets, options);
  }

  /** Frees every parameter and cached table. */
  dispose(): void {
    for (const t of this.namedParameters().values()) t.dispose();
    for (const l of this.linears().values()) {
      const w = (l as { weight?: { dispose(): void } }).weight;
      if (w && !(w instanceof Tensor)) w.dispose(); // quantized weights
    }
    if (this.#rope) { for (const t of Object.values(this.#rope)) t.dispose(); }
    this.#rope = null;
    for (const b of this.layers) {
      b.input_layernorm.dispose();
      b.post_attention_layernorm.dispose();
    }
    this.norm.dispose();
  }
}
