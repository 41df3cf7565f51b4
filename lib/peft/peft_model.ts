/**
 * {@link PeftModel}: a model prepared for one fine-tuning method — its trainable tensors, LoRA
 * layers, bottleneck adapters, sparse gradient masks and dropout generator — and the honest
 * parameter and byte counts ({@link ParamCounts}) from the real objects.
 *
 * @module
 */

import type { CausalLM } from "../nn/causal_lm.ts";
import { Linear } from "../nn/linear.ts";
import { QuantLinear } from "../nn/quant_linear.ts";
import { mul } from "../ops/elementwise.ts";
import { Rng } from "../rng.ts";
import type { Tensor } from "../tensor.ts";
import type { BottleneckAdapter } from "./bottleneck.ts";
import type { PeftConfig } from "./config.ts";
import { LoraLinear } from "./lora.ts";

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
