/**
 * A GPT with GPT-2's architecture (nanoGPT's model.py in TypeScript): token + learned position
 * embeddings, n_layer pre-LayerNorm blocks of causal multi-head attention and a GELU MLP, a final
 * LayerNorm, and an output projection tied to the token embedding.
 *
 * Config fields and parameter names are Hugging Face GPT-2's (`transformer.h.0.attn.c_attn.weight`,
 * weights in Conv1D's [in, out] layout), so checkpoints load and save with no renaming table.
 *
 * @module
 */

import type { Backend } from "../../backend/backend.ts";
import {
  add,
  attendAll,
  causalSelfAttentionQkv,
  concat,
  type CrossEntropyOptions,
  embedding,
  gelu,
  matmul,
  narrow,
} from "../../ops/mod.ts";
import { lmLoss } from "../../nn/lm_loss.ts";
import { checkpoint } from "../../autograd/checkpoint.ts";
import { Rng } from "../../rng.ts";
import { fmtShape, scope, Tensor } from "../../tensor.ts";
import { LayerNorm, Linear, type LinearLike } from "../../nn/linear.ts";
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
import { type GPTConfig, validateConfig } from "./config.ts";

/** The modules of one {@link Block}, for building it from loaded weights. */
export interface BlockParts {
  /** Pre-attention LayerNorm. */
  ln_1: LayerNorm;
  /** c_attn [C, 3C] and c_proj [C, C]. */
  attn: { c_attn: LinearLike; c_proj: LinearLike };
  /** Pre-MLP LayerNorm. */
  ln_2: LayerNorm;
  /** c_fc [C, 4C] and c_proj [4C, C]. */
  mlp: { c_fc: LinearLike; c_proj: LinearLike };
}

/** One transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)). */
export class Block {
  /** Pre-attention LayerNorm. */
  ln_1: LayerNorm;
  /** Attention projections: c_attn [C, 3C] (q, k, v) and c_proj [C, C]. */
  attn: { c_attn: LinearLike; c_proj: LinearLike };
  /** Pre-MLP LayerNorm. */
  ln_2: LayerNorm;
  /** MLP: c_fc [C, 4C], GELU, c_proj [4C, C]. */
  mlp: { c_fc: LinearLike; c_proj: LinearLike };
  /**
   * Optional bottleneck adapters (Houlsby et al. 2019) applied to the attention and MLP outputs
   * before each residual add; see lib/peft/bottleneck.ts.
   */
  adapters: BlockAdapters = {};

  /**
   * Fresh block with GPT-2's init (residual projections scaled by 1/√(2·n_layer)) from `rng`,
   * or a block made of given modules.
   */
  constructor(readonly config: GPTConfig, device: Backend, init: Rng | BlockParts) {
    if (!(init instanceof Rng)) {
      this.ln_1 = init.ln_1;
      this.attn = init.attn;
      this.ln_2 = init.ln_2;
      this.mlp = init.mlp;
      return;
    }
    const rng = init;
    const C = config.n_embd, eps = config.layer_norm_epsilon ?? 1e-5;
    const projStd = 0.02 / Math.sqrt(2 * config.n_layer);
    this.ln_1 = LayerNorm.init(C, device, eps);
    this.attn = {
      c_attn: Linear.init(C, 3 * C, { device, rng }),
      c_proj: Linear.init(C, C, { device, rng, std: projStd }),
    };
    this.ln_2 = LayerNorm.init(C, device, eps);
    this.mlp = {
      c_fc: Linear.init(C, 4 * C, { device, rng }),
      c_proj: Linear.init(4 * C, C, { device, rng, std: projStd }),
    };
  }

  /** x: [B, T, C] → [B, T, C]. */
  forward(x: Tensor): Tensor {
    const qkv = this.attn.c_attn.forward(this.ln_1.forward(x)); // [B, T, 3C]
    const y = causalSelfAttentionQkv(qkv, this.config.n_head); // [B, T, C]
    return this.afterAttention(x, y);
  }

  /**
   * With cached keys and values of earlier positions (generation): x: [B, Tn, C] → [B, Tn, C]
   * and this block's keys and values of all positions so far, [B, Tp + Tn, C] each. Without a
   * cache this is {@link Block.forward} (causal over x); with one, x must be a single new
   * position (Tn = 1), which attends to every cached key and itself.
   */
  forwardCached(x: Tensor, past: { k: Tensor; v: Tensor } | null): {
    y: Tensor;
    k: Tensor;
    v: Tensor;
  } {
    const C = this.config.n_embd, nh = this.config.n_head;
    const qkv = this.attn.c_attn.forward(this.ln_1.forward(x)); // [B, Tn, 3C]
    const kNew = narrow(qkv, 2, C, C), vNew = narrow(qkv, 2, 2 * C, C);
    if (!past) {
      const y = causalSelfAttentionQkv(qkv, nh);
      return { y: this.afterAttention(x, y), k: kNew, v: vNew };
    }
    if (x.shape[1] !== 1) {
      throw new RangeError(
        `Block.forwardCached: ${x.shape[1]} new positions with a cache (1 only)`,
      );
    }
    const k = concat(past.k, kNew, 1), v = concat(past.v, vNew, 1); // [B, Tp + 1, C]
    const y = attendAll(narrow(qkv, 2, 0, C), k, v, nh);
    return { y: this.afterAttention(x, y), k, v };
  }

  /** The block after its attention: projection, adapters, residual, and the MLP. */
  private afterAttention(x: Tensor, y: Tensor): Tensor {
    let a = this.attn.c_proj.forward(y);
    if (this.adapters.attn) a = this.adapters.attn.forward(a);
    x = add(x, a);
    const h = gelu(this.mlp.c_fc.forward(this.ln_2.forward(x))); // [B, T, 4C]
    let m = this.mlp.c_proj.forward(h);
    if (this.adapters.mlp) m = this.adapters.mlp.forward(m);
    return add(x, m);
  }

  /** The linear layers by their path inside the block (`attn.c_attn`, …). */
  linears(): Map<string, LinearLike> {
    return new Map([
      ["attn.c_attn", this.attn.c_attn],
      ["attn.c_proj", this.attn.c_proj],
      ["mlp.c_fc", this.mlp.c_fc],
      ["mlp.c_proj", this.mlp.c_proj],
    ]);
  }
}

/** Options of {@link GPT.init}. */
export interface GPTInitOptions {
  /** Backend for the parameters. */
  device: Backend;
  /** Seed of the initialisation. Default 0. */
  seed?: number;
}

/** The parameters of a {@link GPT}, for building it from loaded weights. */
export interface GPTParts {
  /** Token embedding [V, C]. */
  wte: Tensor;
  /** Position embedding [n_positions, C]. */
  wpe: Tensor;
  /** The blocks. */
  h: Block[];
  /** Final LayerNorm. */
  ln_f: LayerNorm;
}

/** The GPT model. */
export class GPT implements CausalLM {
  /** See {@link CausalLM.gradCheckpointing}. Default null. */
  gradCheckpointing: GradCheckpointing | null = null;
  /** Token embedding [V, C] (also the tied output projection). */
  wte: Tensor;
  /** Position embedding [n_positions, C]. */
  wpe: Tensor;
  /** The blocks. */
  h: Block[];
  /** Final LayerNorm. */
  ln_f: LayerNorm;

  private constructor(
    readonly config: GPTConfig,
    readonly device: Backend,
    init: Rng | GPTParts,
  ) {
    validateConfig(config);
    if (!(init instanceof Rng)) {
      this.wte = init.wte;
      this.wpe = init.wpe;
      this.h = init.h;
      this.ln_f = init.ln_f;
      return;
    }
    const rng = init;
    const { vocab_size: V, n_positions: P, n_embd: C } = config;
    this.wte = Tensor.randn([V, C], { device, rng, std: 0.02 }).keep();
    this.wpe = Tensor.randn([P, C], { device, rng, std: 0.01 }).keep();
    this.h = Array.from({ length: config.n_layer }, () => new Block(config, device, rng));
    this.ln_f = LayerNorm.init(C, device, config.layer_norm_epsilon ?? 1e-5);
  }

  /** A freshly initialised model (GPT-2's init, seeded). */
  static init(config: GPTConfig, o: GPTInitOptions): GPT {
    return new GPT(config, o.device, new Rng(o.seed ?? 0));
  }

  /** A model made of given parameters (shapes are the caller's responsibility). */
  static fromParts(config: GPTConfig, device: Backend, parts: GPTParts): GPT {
    if (parts.h.length !== config.n_layer) {
      throw new RangeError(`GPT.fromParts: ${parts.h.length} blocks, n_layer is ${config.n_layer}`);
    }
    return new GPT(config, device, parts);
  }

  /** `"gpt2"`. */
  readonly arch = "gpt2";
  /** vocab_size. */
  get vocabSize(): number {
    return this.config.vocab_size;
  }
  /** n_positions. */
  get contextLength(): number {
    return this.config.n_positions;
  }
  /** n_embd. */
  get hiddenSize(): number {
    return this.config.n_embd;
  }
  /** n_layer. */
  get numLayers(): number {
    return this.config.n_layer;
  }
  /** The blocks (`h`). */
  get blocks(): readonly Block[] {
    return this.h;
  }
  /** Conv1D weights are [in, out]: PEFT's fan_in_fan_out is true; every block linear by default. */
  static readonly PEFT_LAYOUT: PeftLayout = {
    fanInFanOut: true,
    defaultTargets: ["c_attn", "c_proj", "c_fc"],
  };
  /** {@link GPT.PEFT_LAYOUT}. */
  readonly peftLayout: PeftLayout = GPT.PEFT_LAYOUT;
  /** The output projection is the token embedding. */
  readonly outputWeight: OutputWeight = { name: "transformer.wte.weight", tied: true };
  /** `transformer.ln_f.weight`, `transformer.ln_f.bias`. */
  readonly finalNormNames: readonly string[] = ["transformer.ln_f.weight", "transformer.ln_f.bias"];
  /** `transformer.h.<i>`. */
  blockPrefix(i: number): string {
    return `transformer.h.${i}`;
  }
  /** Block index of `transformer.h.<i>…`, else -1. */
  blockIndex(name: string): number {
    return blockIndexOf("transformer.h", name);
  }

  /**
   * A model whose parameters come from `state` (e.g. a safetensors file): every GPT-2 name must
   * be present with the right shape; unknown names are an error. Tensors are copied to `device`.
   */
  static fromState(config: GPTConfig, state: Map<string, Tensor>, device: Backend): GPT {
    const m = GPT.init(config, { device });
    m.loadState(state);
    return m;
  }

  /** Replaces parameters by name (shapes must match). */
  loadState(state: Map<string, Tensor>): void {
    const own = this.namedParameters();
    for (const name of state.keys()) {
      if (name === "lm_head.weight") continue; // tied to wte in GPT-2 checkpoints
      if (!own.has(name)) throw new Error(`GPT.loadState: unknown parameter ${name}`);
    }
    for (const [name, p] of own) {
      const t = state.get(name);
      if (!t) throw new Error(`GPT.loadState: missing parameter ${name}`);
      if (fmtShape(t.shape) !== fmtShape(p.shape)) {
        throw new Error(
          `GPT.loadState: ${name} is ${fmtShape(t.shape)}, expected ${fmtShape(p.shape)}`,
        );
      }
    }
    for (const [name, p] of own) this.setParameter(name, state.get(name)!, p);
  }

  /** Points the parameter `name` at `src`'s storage and frees the old tensor. */
  private setParameter(name: string, src: Tensor, old: Tensor): void {
    if (src.backend !== this.device) {
      throw new Error(
        `GPT.loadState: ${name} lives on ${src.backend.kind}, the model on ${this.device.kind}`,
      );
    }
    const t = src.reshape(src.shape).keep(); // shares the storage (reference counted)
    const parts = name.split(".");
    // transformer.wte.weight | transformer.wpe.weight | transformer.ln_f.{weight,bias}
    // transformer.h.{i}.{ln_1|ln_2}.{weight,bias} | transformer.h.{i}.{attn|mlp}.{lin}.{weight,bias}
    if (parts[1] === "wte") this.wte = t;
    else if (parts[1] === "wpe") this.wpe = t;
    else if (parts[1] === "ln_f") (this.ln_f as unknown as Record<string, Tensor>)[parts[2]] = t;
    else {
      const blk = this.h[Number(parts[2])];
      if (parts[3] === "ln_1" || parts[3] === "ln_2") {
        (blk[parts[3]] as unknown as Record<string, Tensor>)[parts[4]] = t;
      } else {
        const lin =
          (blk as unknown as Record<string, Record<string, LinearLike>>)[parts[3]][parts[4]];
        (lin as unknown as Record<string, Tensor>)[parts[5]] = t;
      }
    }
    old.dispose();
  }

  /** All parameters by GPT-2 name, in a fixed order (embeddings, blocks, final LayerNorm). */
  namedParameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    out.set("transformer.wte.weight", this.wte);
    out.set("transformer.wpe.weight", this.wpe);
    this.h.forEach((b, i) => {
      const pre = `transformer.h.${i}`;
      for (const [n, t] of b.ln_1.parameters()) out.set(`${pre}.ln_1.${n}`, t);
      for (const [path, lin] of b.linears()) {
        if (path === "mlp.c_fc") {
          for (const [n, t] of b.ln_2.parameters()) out.set(`${pre}.ln_2.${n}`, t);
        }
        for (const [n, t] of lin.parameters()) out.set(`${pre}.${path}.${n}`, t);
      }
    });
    for (const [n, t] of this.ln_f.parameters()) out.set(`transformer.ln_f.${n}`, t);
    return out;
  }

  /** Every linear layer by module path (`transformer.h.0.attn.c_attn`, …). */
  linears(): Map<string, LinearLike> {
    const out = new Map<string, LinearLike>();
    this.h.forEach((b, i) => {
      for (const [p, l] of b.linears()) out.set(`transformer.h.${i}.${p}`, l);
    });
    return out;
  }

  /** Replaces the linear at a module path (how LoRA and quantization wrap layers). */
  setLinear(path: string, layer: LinearLike): void {
    const m = /^transformer\.h\.(\d+)\.(attn|mlp)\.(c_attn|c_proj|c_fc)$/.exec(path);
    const blk = m ? this.h[Number(m[1])] : undefined;
    if (
      !m || !blk || !(m[3] in (blk as unknown as Record<string, Record<string, unknown>>)[m[2]])
    ) {
      throw new Error(`GPT.setLinear: no linear layer at ${path}`);
    }
    (blk as unknown as Record<string, Record<string, LinearLike>>)[m[2]][m[3]] = layer;
  }

  /** Number of parameters (tied embedding counted once). */
  get numParameters(): number {
    let n = 0;
    for (const t of this.namedParameters().values()) n += t.size;
    return n;
  }

  /** ids: i32 [B, T] → logits [B, T, V]. */
  forward(ids: Tensor): Tensor {
    return this.head(this.hidden(ids));
  }

  /** The output projection (tied to wte): h [..., C] → logits [..., V]. */
  private head(h: Tensor): Tensor {
    return matmul(h, this.wte, { transB: true });
  }

  /** ids: i32 [B, T] → the final hidden states ln_f(blocks(…)) [B, T, C]. */
  private hidden(ids: Tensor): Tensor {
    if (ids.ndim !== 2 || ids.dtype !== "i32") {
      throw new RangeError(
        `GPT.forward: ids must be i32 [B, T], got ${ids.dtype} ${fmtShape(ids.shape)}`,
      );
    }
    const T = ids.shape[1];
    if (T > this.config.n_positions) {
      throw new RangeError(
        `GPT.forward: sequence length ${T} exceeds n_positions ${this.config.n_positions}`,
      );
    }
    const pos = Tensor.fromArray(Int32Array.from({ length: T }, (_, i) => i), [T], {
      device: this.device,
    });
    let x = add(embedding(ids, this.wte), embedding(pos, this.wpe)); // [B, T, C]
    const ck = this.gradCheckpointing;
    // Each block in its own scope: what no tape holds is freed at the block's end (evaluation
    // keeps one block's intermediates, not the whole model's).
    for (const b of this.h) {
      const h = x;
      x = ck ? checkpoint((h) => b.forward(h), h, ck.rngs) : scope(() => b.forward(h));
    }
    return this.ln_f.forward(x); // [B, T, C]
  }

  /**
   * Logits of new positions given the keys and values of earlier ones (generation without
   * re-reading the whole window): ids: i32 [B, Tn] at positions cache.length … → logits
   * [B, Tn, V] and the cache extended by them. Without a cache (the prompt) it is {@link forward};
   * with one, Tn must be 1. The returned cache's tensors are new; the caller disposes the old.
   */
  forwardCached(
    ids: Tensor,
    cache: KVCache | null,
    opts: ForwardCachedOptions = {},
  ): { logits: Tensor; cache: KVCache } {
    const r = runCachedBlocks(
      "GPT.forwardCached",
      ids,
      cache,
      { length: this.config.n_positions, limit: "n_positions" },
      (p0, Tn) => {
        const pos = Tensor.fromArray(Int32Array.from({ length: Tn }, (_, i) => p0 + i), [Tn], {
          device: this.device,
        });
        return add(embedding(ids, this.wte), embedding(pos, this.wpe)); // [B, Tn, C]
      },
      this.h.length,
      (i, x, past) => this.h[i].forwardCached(x, past),
      opts,
    );
    return { logits: this.head(this.ln_f.forward(r.x)), cache: r.cache };
  }

  /**
   * Mean next-token cross-entropy: ids, targets: i32 [B, T] → scalar [] (nats per token). With
   * `options.count`, targets of -100 are masked out (see `CrossEntropyOptions`).
   */
  loss(ids: Tensor, targets: Tensor, options?: CrossEntropyOptions): Tensor {
    // In row chunks when the logits would not fit one buffer (lib/nn/lm_loss.ts).
    return lmLoss(this.hidden(ids), (h) => this.head(h), this.vocabSize, targets, options);
  }

  /** Frees every parameter. */
  dispose(): void {
    for (const t of this.namedParameters().values()) t.dispose();
  }
}
