/**
 * One optimizer step, shared by `deno task train` (finetune) and `deno task pretrain`: forward
 * and backward of each micro-batch under a tape, gradients averaged over the micro-batches,
 * masked, clipped to a global norm and applied by the optimizer.
 *
 * On a backend that waits once per step (`Backend.oneWaitPerStep`: a GPU) the losses stay on
 * the device, clipping happens inside the optimizer kernels, and losses and gradient norm come
 * back together at the end, in one readback: one GPU wait per step (tested). The CPU reads each loss and the norm as it goes (no round trip to save;
 * the same numerics as ever).
 *
 * @module
 */

import { Tape } from "../autograd/tape.ts";
import type { Batch } from "../data/batch.ts";
import { countTargets } from "../data/example_batch.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import type { AdamW } from "../optim/optimizers.ts";
import { clipGradNorm, clipGradNormOnDevice, GradAccumulator } from "../optim/schedule.ts";
import { scope, Tensor } from "../tensor.ts";

/** A step whose loss (or gradient norm) is not finite; the update ran in memory only. */
export class DivergedError extends Error {
  /** The step's mean loss (NaN or ±Infinity, or finite with a non-finite gradient norm). */
  readonly loss: number;
  /** Creates the error for a step's mean loss. */
  constructor(loss: number) {
    super(`loss is ${loss}`);
    this.name = "DivergedError";
    this.loss = loss;
  }
}

/** Options of {@link trainStep}. */
export interface StepOptions {
  /** Learning rate of this step. */
  lr: number;
  /** Largest global gradient norm; gradients are scaled down to it. */
  maxNorm: number;
  /** Zeroes gradient entries that must not train (e.g. `PeftModel.maskGrads`). */
  mask?: (grads: Map<Tensor, Tensor>) => void;
}

/** What one {@link trainStep} did. */
export interface StepResult {
  /** Mean loss over the micro-batches (nats/token). */
  loss: number;
  /** Targets that counted in the loss (not -100), over the micro-batches. */
  trained: number;
  /** Targets masked out (-100: prompts, padding). */
  masked: number;
}

/**
 * Trains `params` (the tensors the tape watches) on `batches` (the micro-batches of one step):
 * see the module docs. Throws a {@link DivergedError} when the loss or the gradient norm is not
 * finite (on the CPU before the update, on a GPU after it, in memory only).
 */
export async function trainStep(
  model: CausalLM,
  params: Iterable<Tensor>,
  opt: AdamW,
  batches: readonly Batch[],
  o: StepOptions,
): Promise<StepResult> {
  const dev = model.device, oneWait = dev.oneWaitPerStep;
  const watched = [...params];
  const acc = new GradAccumulator();
  const lossesOnDevice: Tensor[] = [];
  let lossSum = 0, trained = 0, masked = 0;
  for (const batch of batches) {
    const { batchSize: B, seqLen: T } = batch;
    // Token windows count every target (the unmasked loss, as ever); instruction batches mask
    // prompts and padding (-100) out of the mean.
    const count = countTargets(batch.y);
    trained += count;
    masked += batch.y.length - count;
    const l = await scope(async () => {
      const x = Tensor.fromArray(batch.x, [B, T], { device: dev, dtype: "i32" });
      const y = Tensor.fromArray(batch.y, [B, T], { device: dev, dtype: "i32" });
      const tape = new Tape();
      tape.watch(...watched);
      const loss = tape.run(() => model.loss(x, y, { count }));
      const grads = tape.backward(loss);
      for (const g of grads.values()) g.keep();
      acc.add(grads);
      return oneWait ? loss : await loss.item();
    });
    if (typeof l === "number") lossSum += l;
    else lossesOnDevice.push(l);
  }
  const n = batches.length;
  if (!oneWait && !Number.isFinite(lossSum)) throw new DivergedError(lossSum / n);
  lossSum = await scope(async () => {
    // The gradients were kept past their micro-batch's scope: they are released here, after the
    // update, or each step would leave a set behind (on WebGPU, buffers the pool never sees again).
    const grads = acc.take();
    try {
      o.mask?.(grads);
      if (!oneWait) {
        await clipGradNorm(grads, o.maxNorm);
        opt.update(grads, o.lr);
        return lossSum;
      }
      const clip = clipGradNormOnDevice(grads, o.maxNorm);
      opt.update(grads, o.lr, clip);
      // The step's one wait: every loss and the [norm, factor] pair in one readback.
      const host = await Tensor.readAll([...lossesOnDevice, clip]);
      const norm = host[host.length - 1][0];
      const s = host.slice(0, -1).reduce((a, b) => a + b[0], 0);
      if (!Number.isFinite(s) || !Number.isFinite(norm)) throw new DivergedError(s / n);
      return s;
    } finally {
      for (const g of grads.values()) g.dispose();
      for (const t of lossesOnDevice) t.dispose();
    }
  });
  return { loss: lossSum / n, trained, masked };
}
