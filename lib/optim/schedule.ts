/**
 * Learning-rate schedules, gradient clipping and gradient accumulation.
 *
 * @module
 */

import { add, mul, scale, sum } from "../ops/mod.ts";
import { Tensor } from "../tensor.ts";

/** Options of {@link cosineSchedule}. */
export interface CosineOptions {
  /** Peak learning rate. */
  maxLr: number;
  /** Final learning rate. Default maxLr / 10. */
  minLr?: number;
  /** Linear warm-up steps (from maxLr/warmup up to maxLr). Default 0. */
  warmup?: number;
  /** Total steps; after it the rate stays at minLr. */
  total: number;
}

/** Linear warm-up then cosine decay to minLr (nanoGPT's `get_lr`). `step` counts from 0. */
export function cosineSchedule(o: CosineOptions): (step: number) => number {
  const minLr = o.minLr ?? o.maxLr / 10, warmup = o.warmup ?? 0;
  if (!(o.maxLr > 0) || !(o.total > 0) || warmup < 0) {
    throw new RangeError("cosineSchedule: maxLr and total must be > 0, warmup ≥ 0");
  }
  return (step) => {
    if (step < warmup) return (o.maxLr * (step + 1)) / warmup;
    if (step >= o.total) return minLr;
    const r = (step - warmup) / Math.max(1, o.total - warmup);
    return minLr + 0.5 * (1 + Math.cos(Math.PI * r)) * (o.maxLr - minLr);
  };
}

/**
 * The global L2 norm of all gradients. Each gradient's sum of squares is reduced on the device;
 * the scalars are read back together (one GPU round trip) and added in float64 on the host.
 */
export async function gradNorm(grads: Map<Tensor, Tensor>): Promise<number> {
  const sums: Tensor[] = [], temps: Tensor[] = [];
  for (const g of grads.values()) {
    const flat = g.reshape([g.size]);
    const sq = mul(flat, flat);
    sums.push(sum(sq, 0));
    temps.push(flat, sq);
  }
  const values = await Promise.all(sums.map((s) => s.item()));
  for (const t of [...temps, ...sums]) t.dispose();
  let total = 0;
  for (const v of values) total += v;
  return Math.sqrt(total);
}

/**
 * Scales all gradients so that their global norm is at most `maxNorm` (PyTorch's
 * `clip_grad_norm_`, factor maxNorm / (norm + 1e-6)). Replaces the map's entries; returns the
 * norm before clipping. A non-finite norm is an error naming it (the loss diverged).
 */
export async function clipGradNorm(grads: Map<Tensor, Tensor>, maxNorm: number): Promise<number> {
  const norm = await gradNorm(grads);
  if (!Number.isFinite(norm)) throw new Error(`clipGradNorm: gradient norm is ${norm}`);
  const f = maxNorm / (norm + 1e-6);
  if (f < 1) {
    for (const [p, g] of grads) {
      grads.set(p, scale(g, f));
      g.dispose();
    }
  }
  return norm;
}

/**
 * Global-norm clipping without a round trip to the host: the norm and the factor
 * min(1, maxNorm / (norm + 1e-6)) are computed on the device (one `sumsq` dispatch per gradient
 * plus one) and returned as a [2] tensor [norm, factor]. Pass it to `AdamW.update` / `SGD.update`,
 * whose kernels multiply each gradient by the factor; read the norm later together with the loss
 * (`toArray()`), so a training step waits on the GPU once. The gradients are not modified.
 */
export function clipGradNormOnDevice(grads: Map<Tensor, Tensor>, maxNorm: number): Tensor {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNormOnDevice: maxNorm ${maxNorm} must be > 0`);
  const gs = [...grads.values()];
  if (!gs.length) throw new Error("clipGradNormOnDevice: no gradients");
  const dev = gs[0].backend;
  if (gs.some((g) => g.backend !== dev)) {
    throw new Error("clipGradNormOnDevice: gradients on different backends");
  }
  const s = dev.clipFactor(gs.map((g) => ({ s: g.storage, n: g.size })), maxNorm);
  return new Tensor(dev, s, [2], "f32");
}

/**
 * Sums gradients of several micro-batches; `take()` returns their mean. The running sums belong
 * to the accumulator: they are kept past the {@link scope} of the micro-batch that made them
 * (each micro-batch usually runs in a scope of its own), and released by `take()`'s caller.
 */
export class GradAccumulator {
  private acc = new Map<Tensor, Tensor>();
  private count = 0;

  /** Adds one micro-batch's gradients (the map's tensors are consumed: disposed or kept). */
  add(grads: Map<Tensor, Tensor>): void {
    for (const [p, g] of grads) {
      const prev = this.acc.get(p);
      if (prev) {
        this.acc.set(p, add(prev, g).keep());
        prev.dispose();
        g.dispose();
      } else this.acc.set(p, g);
    }
    this.count++;
  }

  /** Number of micro-batches added since the last take. */
  get size(): number {
    return this.count;
  }

  /** The mean gradient over the micro-batches; resets the accumulator. */
  take(): Map<Tensor, Tensor> {
    if (this.count === 0) throw new Error("GradAccumulator.take: nothing accumulated");
    const out = new Map<Tensor, Tensor>();
    for (const [p, g] of this.acc) {
      out.set(p, this.count === 1 ? g : scale(g, 1 / this.count));
      if (this.count !== 1) g.dispose();
    }
    this.acc.clear();
    this.count = 0;
    return out;
  }
}
