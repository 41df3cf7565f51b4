/**
 * A frozen linear layer whose weight is stored quantized (f16, int8, NF4/FP4 with optional double
 * quantization) and de-quantized inside the matmul kernel. Its backward reaches the input through
 * the frozen weight (dX = dY · W) and never forms a gradient for W.
 *
 * @module
 */

import { record } from "../autograd/record.ts";
import type { Backend } from "../backend/backend.ts";
import type { Linear, LinearLike } from "./linear.ts";
import { type DeviceWeight, toDevice } from "../quant/device_weight.ts";
import { qmatmul } from "../quant/qmatmul.ts";
import { sum } from "../ops/reduce.ts";
import { quantize } from "../quant/quantize.ts";
import { quantizeToDevice } from "../quant/quantize_device.ts";
import type { Tensor } from "../tensor.ts";

import { BASE_QUANTS, type BaseQuant } from "../quant/formats/registry.ts";

export { BASE_QUANTS, type BaseQuant };

/** Options of {@link QuantLinear.fromLinear}. */
export interface QuantLinearOptions {
  /** Format of the weight. */
  format: Exclude<BaseQuant, "none">;
  /** Blockwise 4-bit block size. Default 64. */
  blockSize?: number;
  /** Double-quantize the 4-bit absmax constants (QLoRA). Default true for nf4/fp4. */
  doubleQuant?: boolean;
}

/** y = x · dequant(W)ᵀ + b with W frozen in a quantized format ([out, in] on the device). */
export class QuantLinear implements LinearLike {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;

  /** Wraps a device weight [out, in] and an optional frozen bias [out]. */
  constructor(public weight: DeviceWeight, public bias: Tensor | null) {
    [this.outFeatures, this.inFeatures] = weight.shape;
  }

  /**
   * Quantizes a Linear's weight (host round trip; GPT-2's [in, out] layout is transposed to
   * [out, in] first, as bitsandbytes stores nn.Linear weights; 4-bit formats are quantized on
   * the device where the backend can, `quantizeToDevice`). The Linear itself is untouched.
   */
  static async fromLinear(lin: Linear, o: QuantLinearOptions): Promise<QuantLinear> {
    const w = (await lin.weight.toArray()) as Float32Array;
    const [I, O] = [lin.inFeatures, lin.outFeatures];
    let wOutIn = w;
    if (lin.layout === "in_out") {
      wOutIn = new Float32Array(I * O);
      for (let i = 0; i < I; i++) for (let o2 = 0; o2 < O; o2++) wOutIn[o2 * I + i] = w[i * O + o2];
    }
    const is4 = o.format === "nf4" || o.format === "fp4";
    const dev: Backend = lin.weight.backend;
    // 4-bit formats: on the device where the backend quantizes there (WebGPU), as the loader.
    const w4 = is4
      ? await quantizeToDevice(dev, wOutIn, [O, I], o.format, {
        blockSize: o.blockSize ?? 64,
        doubleQuant: o.doubleQuant ?? true,
      })
      : toDevice(dev, quantize(wOutIn, [O, I], o.format === "int8" ? "int8-row" : "f16"));
    return new QuantLinear(w4, lin.bias);
  }

  /** x: [..., in] → [..., out]; differentiable with respect to x (and a watched bias). */
  forward(x: Tensor): Tensor {
    const w = this.weight;
    const y = qmatmul(x, w, { bias: this.bias ?? undefined });
    const inputs = this.bias ? [x, this.bias] : [x];
    return record(y, inputs, (g, needs) => {
      const out: (Tensor | null)[] = [needs[0] ? qmatmul(g, w, { transW: true }) : null];
      if (this.bias) out.push(needs[1] ? biasGrad(g, this.outFeatures) : null);
      return out;
    });
  }

  /** The frozen bias only (the quantized weight is not a tensor parameter). */
  parameters(): Map<string, Tensor> {
    return this.bias ? new Map([["bias", this.bias]]) : new Map();
  }

  /** Device bytes of the quantized weight. */
  get weightBytes(): number {
    return this.weight.bytes;
  }
}

/** Σ of g over all rows: the gradient of a bias [n]. */
function biasGrad(g: Tensor, n: number): Tensor {
  const flat = g.reshape([-1, n]);
  const s = sum(flat, 0);
  flat.dispose();
  return s;
}
