/**
 * One API for every fine-tuning method of the workbook: `preparePeft(model, config)` freezes,
 * quantizes and wraps a model (GPT-2 or Llama, any {@link CausalLM}) in place and returns the trainable parameters, the honest parameter
 * and byte counts, and (for the sparse method) the gradient masks.
 *
 * Methods:
 * - `lora`, `qlora`: rank-r adapters on the targeted linears; qlora stores every block linear of
 *   the frozen base in NF4 with double quantization (any `quant` format may be chosen for lora).
 * - `full`: every parameter trains (no quantization possible).
 * - `adapter`: bottleneck adapters after attention and MLP of every block.
 * - `bitfit`: only biases (of linears and LayerNorms) train.
 * - `freeze-lower`: blocks below `layers` are frozen; the rest and the final norm train, and an
 *   untied output projection (Llama's lm_head); a tied one (the token embedding) trains only
 *   with `layers = n_layer`, i.e. only the head: final norm and the tied embedding.
 * - `sparse`: the top `sparsity` fraction of block weights by accumulated |gradient| on a few
 *   calibration batches train; all other entries are masked out of every update.
 *
 * @module
 */

import { Tape } from "../autograd/tape.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { Linear, type LinearLike } from "../nn/linear.ts";
import { abs } from "../ops/abs.ts";
import { add, mul } from "../ops/mod.ts";
import { Rng } from "../rng.ts";
import { scope, Tensor } from "../tensor.ts";
import { BottleneckAdapter } from "./bottleneck.ts";
import { LoraLinear } from "./lora.ts";
import { type BaseQuant, QuantLinear } from "../nn/quant_linear.ts";

/** Fine-tuning methods. */
export type Method = "lora" | "qlora" | "full" | "adapter" | "bitfit" | "freeze-lower" | "sparse";

/** All methods, for flag validation. */
export const METHODS: readonly Method[] = [
  "qlora",
  "lora",
  "full",
  "adapter",
  "bitfit",
  "freeze-lower",
  "sparse",
];

/** Settings of {@link preparePeft}; unset fields take the method's defaults. */
export interface PeftConfig {
  /** The method. */
  method: Method;
  /** LoRA rank. Default 8. */
  r?: number;
  /** LoRA α. Default 16. */
  alpha?: number;
  /** Dropout on the LoRA input. Default 0.05. */
  dropout?: number;
  /** α/√r scaling. Default false. */
  rslora?: boolean;
  /**
   * Module names or suffixes to adapt (PEFT's target_modules), or ["all-linear"]. Default: the
   * architecture's block linears (`c_attn,c_proj,c_fc` for GPT-2, `q_proj,…,down_proj` for Llama).
   */
  targets?: string[];
  /** Storage of the frozen base linears. Default nf4 for qlora, none otherwise. */
  quant?: BaseQuant;
  /** 4-bit block size. Default 64. */
  blockSize?: number;
  /** Double quantization of 4-bit scales. Default true. */
  doubleQuant?: boolean;
  /** Bottleneck width of `adapter`. Default 16. */
  adapterSize?: number;
  /** Frozen lower blocks of `freeze-lower`. Default ⌊n_layer / 2⌋. */
  layers?: number;
  /** Fraction of block weights trained by `sparse`. Default 0.01. */
  sparsity?: number;
  /** Seed of adapter initialisation and dropout. Default 0. */
  seed?: number;
}

/** Parameter and memory accounting from the real objects. */
export interface ParamCounts {
  /** Trainable parameters (masked entries only, for `sparse`). */
  trainable: number;
  /** Frozen parameters (quantized weights counted by their number of weights). */
  frozen: number;
  /** trainable + frozen. */
  total: number;
  /** Bytes of all weights as stored (f32 tensors + quantized weights). */
  weightBytes: number;
  /** Bytes the same weights would take in f32. */
  weightBytesF32: number;
  /** Bytes of frozen block linears as stored, and in f32 (the base-weight saving). */
  baseLinearBytes: number;
  /** {@link baseLinearBytes} if stored in f32. */
  baseLinearBytesF32: number;
  /** Gradient bytes during training (f32, one per trainable tensor element). */
  gradBytes: number;
  /** AdamW state bytes (two f32 moments per trainable tensor element). */
  optimizerBytes: number;
}

/** Default targets of GPT-2: every linear layer of its blocks (the model's `peftLayout` gives each architecture's). */
export const DEFAULT_TARGETS = ["c_attn", "c_proj", "c_fc"];

/** Whether a module path matches PEFT-style targets (exact name or `.`-suffix). */
export function matchesTarget(path: string, targets: readonly string[]): boolean {
  return targets.some((t) => t === "all-linear" || path === t || path.endsWith(`.${t}`));
}

/** A model prepared for one fine-tuning method. */
export class PeftModel {
  /** Trainable tensors by parameter name (hand these to the optimizer and the tape). */
  readonly trainable: Map<string, Tensor> = new Map();
  /** LoRA layers by module path. */
  readonly loraLayers: Map<string, LoraLinear> = new Map();
  /** Bottleneck adapters by name prefix. */
  readonly adapters: Map<string, BottleneckAdapter> = new Map();
  /** Gradient masks of `sparse` (parameter → 0/1 mask). */
  readonly masks: Map<Tensor, Tensor> = new Map();
  /** Generator of dropout masks (part of a checkpoint's state). */
  readonly dropoutRng: Rng;

  /** Use {@link preparePeft}. */
  constructor(readonly model: CausalLM, readonly config: Required<PeftConfig>) {
    this.dropoutRng = new Rng(config.seed + 7919);
  }

  /** Dropout on (training) or off (evaluation). */
  setTraining(on: boolean): void {
    for (const l of this.loraLayers.values()) l.training = on;
  }

  /** Applies the sparse method's masks to gradients (identity otherwise). */
  maskGrads(grads: Map<Tensor, Tensor>): void {
    for (const [p, m] of this.masks) {
      const g = grads.get(p);
      if (!g) continue;
      grads.set(p, mul(g, m));
      g.dispose();
    }
  }

  /** Parameter and byte accounting (see {@link ParamCounts}). */
  counts(): ParamCounts {
    const trainableSet = new Set(this.trainable.values());
    let trainable = 0, frozen = 0, weightBytes = 0, weightBytesF32 = 0;
    let baseLinearBytes = 0, baseLinearBytesF32 = 0, denseTrainable = 0;
    const seen = new Set<Tensor>();
    const visit = (t: Tensor) => {
      if (seen.has(t)) return;
      seen.add(t);
      weightBytes += t.bytes;
      weightBytesF32 += t.size * 4;
      if (trainableSet.has(t)) {
        denseTrainable += t.size;
        trainable += this.masks.has(t) ? this.maskCounts.get(t)! : t.size;
        if (this.masks.has(t)) frozen += t.size - this.maskCounts.get(t)!;
      } else frozen += t.size;
    };
    for (const t of this.model.namedParameters().values()) visit(t);
    for (const t of this.trainable.values()) visit(t);
    for (const [, lin] of this.model.linears()) {
      const base = lin instanceof LoraLinear ? lin.base : lin;
      if (base instanceof QuantLinear) {
        frozen += base.weight.numel;
        weightBytes += base.weight.bytes;
        weightBytesF32 += base.weight.numel * 4;
        baseLinearBytes += base.weight.bytes;
        baseLinearBytesF32 += base.weight.numel * 4;
      } else if (base instanceof Linear) {
        baseLinearBytes += base.weight.bytes;
        baseLinearBytesF32 += base.weight.size * 4;
      }
    }
    return {
      trainable,
      frozen,
      total: trainable + frozen,
      weightBytes,
      weightBytesF32,
      baseLinearBytes,
      baseLinearBytesF32,
      gradBytes: denseTrainable * 4,
      optimizerBytes: denseTrainable * 8,
    };
  }

  /** Entries kept by each sparse mask. */
  readonly maskCounts: Map<Tensor, number> = new Map();
}

/** Calibration batch of the `sparse` method: token ids and targets, i32 [B, T]. */
export interface CalibrationBatch {
  /** Input ids. */
  x: Tensor;
  /** Target ids. */
  y: Tensor;
}

function resolve(model: CausalLM, c: PeftConfig): Required<PeftConfig> {
  const m = c.method;
  if (!METHODS.includes(m)) throw new Error(`preparePeft: unknown method ${m}`);
  const full: Required<PeftConfig> = {
    method: m,
    r: c.r ?? 8,
    alpha: c.alpha ?? 16,
    dropout: c.dropout ?? 0.05,
    rslora: c.rslora ?? false,
    targets: c.targets ?? [...model.peftLayout.defaultTargets],
    quant: c.quant ?? (m === "qlora" ? "nf4" : "none"),
    blockSize: c.blockSize ?? 64,
    doubleQuant: c.doubleQuant ?? true,
    adapterSize: c.adapterSize ?? 16,
    layers: c.layers ?? Math.floor(model.numLayers / 2),
    sparsity: c.sparsity ?? 0.01,
    seed: c.seed ?? 0,
  };
  if (m === "qlora" && full.quant === "none") {
    throw new Error("preparePeft: qlora needs a quantized base (quant nf4, fp4, int8 or f16)");
  }
  if ((m === "full" || m === "sparse") && full.quant !== "none") {
    throw new Error(`preparePeft: ${m} trains the base weights, which must stay f32 (quant none)`);
  }
  if (!Number.isInteger(full.layers) || full.layers < 0 || full.layers > model.numLayers) {
    throw new RangeError(
      `preparePeft: layers ${full.layers} must be in [0, ${model.numLayers}]`,
    );
  }
  if (!(full.sparsity > 0 && full.sparsity <= 1)) {
    throw new RangeError(`preparePeft: sparsity ${full.sparsity} must be in (0, 1]`);
  }
  if (!(full.dropout >= 0 && full.dropout < 1)) {
    throw new RangeError(`preparePeft: dropout ${full.dropout} must be in [0, 1)`);
  }
  return full;
}

/**
 * Prepares `model` in place for `config.method` (see the module docs) and returns the
 * {@link PeftModel}. `calibration` batches are required by `sparse`.
 */
export async function preparePeft(
  model: CausalLM,
  config: PeftConfig,
  calibration: CalibrationBatch[] = [],
): Promise<PeftModel> {
  const c = resolve(model, config);
  const pm = new PeftModel(model, c);
  const linears = model.linears();
  const trainableLinear = (path: string): boolean => {
    if (c.method === "full" || c.method === "sparse") return true;
    if (c.method === "freeze-lower") return model.blockIndex(path) >= c.layers;
    return false;
  };
  // A base loaded already quantized (loadModel's `quantize`) must be frozen, in the same format.
  for (const [path, lin] of linears) {
    if (!(lin instanceof QuantLinear)) continue;
    if (trainableLinear(path)) {
      throw new Error(
        `preparePeft: ${path} was loaded quantized (${lin.weight.format}) but ${c.method} ` +
          `trains it; load the base in f32`,
      );
    }
    if (
      lin.weight.format !== c.quant && !(c.quant === "int8" && lin.weight.format === "int8-row")
    ) {
      throw new Error(
        `preparePeft: ${path} was loaded as ${lin.weight.format}, the config asks for ${c.quant}`,
      );
    }
  }
  // 1. Quantize the frozen block linears.
  if (c.quant !== "none") {
    for (const [path, lin] of linears) {
      if (trainableLinear(path) || lin instanceof QuantLinear) continue;
      const q = await QuantLinear.fromLinear(lin as Linear, {
        format: c.quant,
        blockSize: c.blockSize,
        doubleQuant: c.doubleQuant,
      });
      model.setLinear(path, q);
      (lin as Linear).weight.dispose(); // the f32 copy is gone: only the packed weight remains
    }
  }
  const named = model.namedParameters();
  const add2 = (name: string, t: Tensor) => pm.trainable.set(name, t);
  switch (c.method) {
    case "lora":
    case "qlora": {
      let i = 0;
      for (const [path, lin] of model.linears()) {
        if (!matchesTarget(path, c.targets)) continue;
        const l = new LoraLinear(lin as Linear | QuantLinear, {
          r: c.r,
          alpha: c.alpha,
          dropout: c.dropout,
          rslora: c.rslora,
          seed: c.seed * 1000 + i++,
          dropoutRng: pm.dropoutRng,
        });
        model.setLinear(path, l);
        pm.loraLayers.set(path, l);
        add2(`${path}.lora_A.weight`, l.loraA);
        add2(`${path}.lora_B.weight`, l.loraB);
      }
      if (pm.loraLayers.size === 0) {
        throw new Error(
          `preparePeft: targets ${c.targets.join(",")} match no linear layer ` +
            `(layers are named like ${[...linears.keys()][0]})`,
        );
      }
      break;
    }
    case "full":
      for (const [n, t] of named) add2(n, t);
      break;
    case "adapter":
      model.blocks.forEach((b, i) => {
        for (const where of ["attn", "mlp"] as const) {
          const a = new BottleneckAdapter(
            model.hiddenSize,
            c.adapterSize,
            model.device,
            c.seed * 100 + 2 * i + (where === "mlp" ? 1 : 0),
          );
          b.adapters[where] = a;
          const prefix = `${model.blockPrefix(i)}.adapter_${where}`;
          pm.adapters.set(prefix, a);
          for (const [n, t] of a.parameters()) add2(`${prefix}.${n}`, t);
        }
      });
      break;
    case "bitfit":
      for (const [n, t] of model.namedParameters()) if (n.endsWith(".bias")) add2(n, t);
      if (pm.trainable.size === 0) {
        throw new Error(`preparePeft: bitfit trains biases, and this ${model.arch} model has none`);
      }
      break;
    case "freeze-lower":
      {
        const out = model.outputWeight;
        for (const [n, t] of model.namedParameters()) {
          const bi = model.blockIndex(n);
          if (bi >= 0 ? bi >= c.layers : model.finalNormNames.includes(n)) add2(n, t);
        }
        // A tied head is also the input embedding: it trains only when every block is frozen.
        if (!out.tied || c.layers === model.numLayers) add2(out.name, named.get(out.name)!);
      }
      break;
    case "sparse": {
      if (calibration.length === 0) {
        throw new Error("preparePeft: sparse needs calibration batches");
      }
      const weights = [...model.namedParameters()].filter(([n, t]) =>
        model.blockIndex(n) >= 0 && t.ndim === 2
      );
      const score = new Map<Tensor, Tensor>();
      for (const batch of calibration) {
        const tape = new Tape();
        tape.watch(...weights.map(([, t]) => t));
        await scope(async () => {
          const loss = tape.run(() => model.loss(batch.x, batch.y));
          const grads = tape.backward(loss);
          for (const [, w] of weights) {
            const a = abs(grads.get(w)!);
            const prev = score.get(w);
            score.set(w, (prev ? add(prev, a) : a).keep());
            prev?.dispose();
          }
          await model.device.sync();
        });
      }
      // Global threshold: the k-th largest score over all block weights.
      const all: Float32Array[] = [];
      for (const [, w] of weights) all.push((await score.get(w)!.toArray()) as Float32Array);
      const flat = new Float32Array(all.reduce((s, a) => s + a.length, 0));
      let o = 0;
      for (const a of all) flat.set(a, (o += a.length) - a.length);
      const k = Math.max(1, Math.round(c.sparsity * flat.length));
      const thr = Float32Array.from(flat).sort()[flat.length - k];
      weights.forEach(([n, w], i) => {
        const m = new Float32Array(w.size);
        let kept = 0;
        for (let j = 0; j < m.length; j++) if (all[i][j] >= thr) (m[j] = 1), kept++;
        score.get(w)!.dispose();
        if (kept === 0) return;
        pm.masks.set(w, Tensor.fromArray(m, w.shape, { device: model.device }).keep());
        pm.maskCounts.set(w, kept);
        add2(n, w);
      });
      break;
    }
  }
  return pm;
}

/** Convenience for notebooks and the CLI: the linear layers with their kinds. */
export function describeLinears(model: CausalLM): { path: string; kind: string }[] {
  return [...model.linears()].map(([path, l]: [string, LinearLike]) => ({
    path,
    kind: l instanceof LoraLinear
      ? `LoRA r=${l.opts.r} on ${l.base instanceof QuantLinear ? l.base.weight.format : "f32"}`
      : l instanceof QuantLinear
      ? `frozen ${l.weight.format}`
      : "f32",
  }));
}
