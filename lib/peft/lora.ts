/**
 * LoRA (Hu et al. 2021) as PEFT implements it: a frozen base layer plus a trainable rank-r update
 *
 *   y = base(x) + s · (drop(x) · Aᵀ) · Bᵀ,   A: [r, in], B: [out, r],   s = α / r (or α / √r)
 *
 * A starts Kaiming-uniform with a = √5 (PyTorch's nn.Linear default, PEFT's choice), B starts at
 * zero, so at step 0 the model is exactly the base model. The base may be an f32 {@link Linear}
 * or a {@link QuantLinear} (QLoRA); either way its weight gets no gradient.
 *
 * @module
 */

import type { Linear, LinearLike } from "../nn/linear.ts";
import { add, addMatmulInPlace, dropout, matmul, scale, sub } from "../ops/mod.ts";
import { Rng } from "../rng.ts";
import { Tensor } from "../tensor.ts";
import { toDevice } from "../quant/device_weight.ts";
import { dequantizeOnDevice } from "../quant/qmatmul.ts";
import { quantize } from "../quant/quantize.ts";
import type { QuantLinear } from "../nn/quant_linear.ts";

/** LoRA hyper-parameters of one layer. */
export interface LoraOptions {
  /** Rank r. */
  r: number;
  /** α: the update is scaled by α/r (or α/√r with rsLoRA). */
  alpha: number;
  /** Dropout probability on the adapter's input. Default 0. */
  dropout?: number;
  /** Scale by α/√r (Kalajdzievski 2023) instead of α/r. Default false. */
  rslora?: boolean;
  /** Seed of A's initialisation. */
  seed: number;
  /** Generator for dropout masks (shared by all layers of a model, for exact resume). */
  dropoutRng?: Rng;
}

/** A frozen base layer plus a trainable low-rank update. */
export class LoraLinear implements LinearLike {
  /** [r, in], Kaiming-uniform. */
  loraA: Tensor;
  /** [out, r], zeros. */
  loraB: Tensor;
  /** s = α/r or α/√r. */
  readonly scaling: number;
  /** Whether dropout is applied (set false for evaluation). */
  training = true;
  /** Whether the update has been folded into the base weight by {@link merge}. */
  merged = false;
  private readonly dropoutRng: Rng;

  /** Wraps `base` with a fresh adapter. */
  constructor(readonly base: Linear | QuantLinear, readonly opts: LoraOptions) {
    const { r, alpha } = opts;
    if (!Number.isInteger(r) || r < 1) {
      throw new RangeError(`LoRA: rank ${r} must be a positive integer`);
    }
    if (!(alpha > 0)) throw new RangeError(`LoRA: alpha ${alpha} must be > 0`);
    const dev = base.weight.backend;
    this.scaling = opts.rslora ? alpha / Math.sqrt(r) : alpha / r;
    // Kaiming-uniform with a = √5: bound = gain·√(3/fan_in), gain = √(2/(1+a²)) → bound = 1/√in.
    const bound = 1 / Math.sqrt(base.inFeatures);
    this.loraA = Tensor.uniform([r, base.inFeatures], {
      device: dev,
      seed: opts.seed,
      low: -bound,
      high: bound,
    }).keep();
    this.loraB = Tensor.zeros([base.outFeatures, r], { device: dev }).keep();
    this.dropoutRng = opts.dropoutRng ?? new Rng(opts.seed + 1);
  }

  /** Input features. */
  get inFeatures(): number {
    return this.base.inFeatures;
  }
  /** Output features. */
  get outFeatures(): number {
    return this.base.outFeatures;
  }

  /** y = base(x) + s · (drop(x) · Aᵀ) · Bᵀ; x: [..., in] → [..., out]. */
  forward(x: Tensor): Tensor {
    const y = this.base.forward(x);
    if (this.merged) return y;
    const p = this.training ? this.opts.dropout ?? 0 : 0;
    const h = matmul(dropout(x, p, this.dropoutRng), this.loraA, { transB: true }); // [..., r]
    return addMatmulInPlace(y, h, this.loraB, this.scaling); // y + s·h·Bᵀ: [..., out]
  }

  /** `lora_A.weight`, `lora_B.weight` (trainable) and the base's parameters (frozen). */
  parameters(): Map<string, Tensor> {
    const m = new Map<string, Tensor>([["lora_A.weight", this.loraA], [
      "lora_B.weight",
      this.loraB,
    ]]);
    for (const [n, t] of this.base.parameters()) m.set(`base_layer.${n}`, t);
    return m;
  }

  /** The update ΔW = s·B·A in the base weight's layout ([in, out] for GPT-2's Conv1D). */
  delta(): Tensor {
    const lin = this.base as Linear;
    return lin.layout === "out_in"
      ? scale(matmul(this.loraB, this.loraA), this.scaling) // [out, in]
      : scale(matmul(this.loraA, this.loraB, { transA: true, transB: true }), this.scaling); // [in, out]
  }

  /**
   * Folds the update into the base weight (W ← W + s·B·A) so inference costs nothing extra.
   * f32 bases are updated on the device. f16/bf16 bases are de-quantized, updated and rounded
   * back to 16 bits: that adds at most half an f16/bf16 ulp per weight (relative 2⁻¹¹ / 2⁻⁸).
   * 4-bit and int8 bases are refused: re-quantizing would add quantization error to the model.
   */
  async merge(): Promise<void> {
    if (this.merged) return;
    await this.applyDelta(+1, "merge");
    this.merged = true;
  }

  /** Undoes {@link merge} (W ← W - s·B·A; exact up to float rounding of the stored format). */
  async unmerge(): Promise<void> {
    if (!this.merged) return;
    await this.applyDelta(-1, "unmerge");
    this.merged = false;
  }

  /** W ← W ± s·B·A, on the device (f32) or through a 16-bit re-rounding. */
  private async applyDelta(sign: 1 | -1, what: string): Promise<void> {
    const base = this.base;
    if ("layout" in base) {
      const d = this.delta();
      const w = (sign > 0 ? add(base.weight, d) : sub(base.weight, d)).keep();
      d.dispose();
      base.weight.dispose();
      base.weight = w;
      return;
    }
    const fmt = base.weight.format;
    if (fmt !== "f16" && fmt !== "bf16" && fmt !== "f32") {
      throw new Error(
        `LoRA ${what}: the base weight is ${fmt}; merging would re-quantize it and add ` +
          `quantization error. Merge into an f32 or f16 copy of the base model instead.`,
      );
    }
    // QuantLinear stores [out, in]: ΔW = s·B·A.
    const w = dequantizeOnDevice(base.weight);
    const d = scale(matmul(this.loraB, this.loraA), this.scaling);
    const merged = sign > 0 ? add(w, d) : sub(w, d);
    const host = (await merged.toArray()) as Float32Array;
    for (const t of [w, d, merged]) t.dispose();
    const q = fmt === "f32"
      ? quantize(host, base.weight.shape, "f32")
      : quantize(host, base.weight.shape, fmt);
    const old = base.weight;
    base.weight = toDevice(old.backend, q);
    old.dispose();
  }
}
