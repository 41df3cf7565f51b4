/**
 * Linear layers and LayerNorm as small modules holding their parameter tensors.
 *
 * @module
 */

import { layerNorm, matmul } from "../ops/mod.ts";
import type { Rng } from "../rng.ts";
import type { Backend } from "../backend/backend.ts";
import { Tensor } from "../tensor.ts";

/** Anything that maps [..., in] to [..., out]: a Linear, or a LoRA/quantized wrapper of one. */
export interface LinearLike {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** y = f(x): [..., in] → [..., out]. */
  forward(x: Tensor): Tensor;
  /** Parameters by local name (`weight`, `bias`, `lora_A.weight`, …). */
  parameters(): Map<string, Tensor>;
}

/**
 * How a weight is stored: `in_out` is GPT-2's Conv1D layout ([in, out], y = x·W), `out_in` is
 * PyTorch's nn.Linear ([out, in], y = x·Wᵀ), used by Llama-style checkpoints.
 */
export type WeightLayout = "in_out" | "out_in";

/** Options of {@link Linear.init}. */
export interface LinearInit {
  /** Backend for the parameters. */
  device: Backend;
  /** Weight layout. Default `in_out` (GPT-2). */
  layout?: WeightLayout;
  /** Standard deviation of the normal init. Default 0.02 (GPT-2). */
  std?: number;
  /** With a bias (initialised to zero). Default true. */
  bias?: boolean;
  /** Random stream. */
  rng: Rng;
}

/** y = x · W + b with W in GPT-2's [in, out] layout (or [out, in]). */
export class Linear implements LinearLike {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;

  /** Wraps existing tensors (weight [in, out] for `in_out`, [out, in] for `out_in`). */
  constructor(
    public weight: Tensor,
    public bias: Tensor | null,
    readonly layout: WeightLayout = "in_out",
  ) {
    if (weight.ndim !== 2) {
      throw new RangeError(`Linear: weight must be 2-D, got [${weight.shape}]`);
    }
    [this.inFeatures, this.outFeatures] = layout === "in_out"
      ? [weight.shape[0], weight.shape[1]]
      : [weight.shape[1], weight.shape[0]];
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== this.outFeatures)) {
      throw new RangeError(`Linear: bias [${bias.shape}] should be [${this.outFeatures}]`);
    }
  }

  /** A fresh layer with N(0, std²) weights and a zero bias. */
  static init(inFeatures: number, outFeatures: number, o: LinearInit): Linear {
    const layout = o.layout ?? "in_out";
    const shape = layout === "in_out" ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
    const w = Tensor.randn(shape, { device: o.device, rng: o.rng, std: o.std ?? 0.02 }).keep();
    const b = o.bias === false ? null : Tensor.zeros([outFeatures], { device: o.device }).keep();
    return new Linear(w, b, layout);
  }

  /** x: [..., in] → [..., out]. */
  forward(x: Tensor): Tensor {
    return matmul(x, this.weight, {
      transB: this.layout === "out_in",
      bias: this.bias ?? undefined,
    });
  }

  /** `weight` and (if any) `bias`. */
  parameters(): Map<string, Tensor> {
    const m = new Map([["weight", this.weight]]);
    if (this.bias) m.set("bias", this.bias);
    return m;
  }
}

/** LayerNorm over the last axis with a learned scale (weight) and shift (bias). */
export class LayerNorm {
  /** Creates ones/zeros parameters of size `dim` (or wraps given ones). */
  constructor(
    public weight: Tensor,
    public bias: Tensor,
    readonly eps = 1e-5,
  ) {}

  /** Fresh LayerNorm: weight 1, bias 0. */
  static init(dim: number, device: Backend, eps = 1e-5): LayerNorm {
    return new LayerNorm(
      Tensor.fromArray(new Float32Array(dim).fill(1), [dim], { device }).keep(),
      Tensor.zeros([dim], { device }).keep(),
      eps,
    );
  }

  /** x: [..., C] → [..., C]. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }

  /** `weight` and `bias`. */
  parameters(): Map<string, Tensor> {
    return new Map([["weight", this.weight], ["bias", this.bias]]);
  }
}
