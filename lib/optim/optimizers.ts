/**
 * Optimizers: AdamW (decoupled weight decay, bias correction) and SGD with momentum. Both update
 * parameter tensors IN PLACE through fused backend kernels (parameters are the one kind of tensor
 * that mutates). State exists only for the parameters handed to the optimizer: frozen weights
 * have no moments.
 *
 * A parameter stored in row chunks (`Tensor.chunks`: larger than the backend's largest buffer)
 * keeps its state in the same chunks; its gradients come one per chunk, keyed by the chunk
 * tensors (as `Tape.watch` makes them), and each chunk is updated like a parameter of its own,
 * under the parameter's name (so weight decay rules by name apply to every chunk). The state is
 * read and restored whole ({@link OptimizerState} holds the whole tensor's buffers), so a
 * checkpoint does not depend on how the tensors were split.
 *
 * @module
 */

import type { AdamItem } from "../backend/backend.ts";
import type { Tensor } from "../tensor.ts";
import { Tensor as T } from "../tensor.ts";

/** Options of {@link AdamW}. */
export interface AdamWOptions {
  /** Learning rate (a schedule may override it per step). Default 1e-3. */
  lr?: number;
  /** (β1, β2). Default (0.9, 0.999). */
  betas?: [number, number];
  /** Denominator epsilon. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay. Default 0.01 (PyTorch's). */
  weightDecay?: number;
  /** Which parameters decay. Default: tensors with ≥ 2 dims (not biases or LayerNorm). */
  decay?: (name: string, p: Tensor) => boolean;
}

/** Serialisable optimizer state (host arrays), for checkpoints. */
export interface OptimizerState {
  /** Optimizer kind. */
  kind: "adamw" | "sgd";
  /** Steps taken. */
  step: number;
  /** Per-parameter buffers by parameter name (AdamW: m and v; SGD: buf). */
  buffers: Record<string, Record<string, Float32Array>>;
}

/** The tensors holding `t`'s values: its row chunks, or `t` itself. */
function parts(t: Tensor): readonly Tensor[] {
  return t.chunks ?? [t];
}

/**
 * A state tensor for parameter `p`, split in the same row chunks as `p`: from host data of p's
 * size, or zeros. Kept past any scope.
 */
function stateLike(p: Tensor, data?: Float32Array): Tensor {
  const make = (q: Tensor, o: number) =>
    (data
      ? T.fromArray(data.subarray(o, o + q.size), q.shape, { device: q.backend })
      : T.zeros(q.shape, { device: q.backend })).keep();
  const cs = p.chunks;
  if (!cs) return make(p, 0);
  let o = 0;
  const chunks = cs.map((c) => {
    const t = make(c, o);
    o += c.size;
    return t;
  });
  return T.fromChunks(chunks).keep();
}

/** AdamW over named parameters. */
export class AdamW {
  /** Hyper-parameters in use. */
  readonly opts: Required<AdamWOptions>;
  /** Steps taken so far. */
  step = 0;
  private m = new Map<string, Tensor>();
  private v = new Map<string, Tensor>();

  /** Creates zero moments for every parameter in `params`. */
  constructor(readonly params: Map<string, Tensor>, opts: AdamWOptions = {}) {
    this.opts = {
      lr: opts.lr ?? 1e-3,
      betas: opts.betas ?? [0.9, 0.999],
      eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? 0.01,
      decay: opts.decay ?? ((_n, p) => p.ndim >= 2),
    };
    for (const [name, p] of params) {
      this.m.set(name, stateLike(p));
      this.v.set(name, stateLike(p));
    }
  }

  /**
   * Applies one update. `grads` maps parameter tensors to their gradients (as returned by
   * `Tape.backward`; a parameter stored in row chunks by its chunk tensors); a parameter (or
   * chunk) without a gradient is left alone. `clip` (from `clipGradNormOnDevice`) scales every
   * gradient by its factor inside the update kernel.
   */
  update(grads: Map<Tensor, Tensor>, lr = this.opts.lr, clip?: Tensor): void {
    this.step++;
    const [b1, b2] = this.opts.betas;
    const h = {
      lr,
      beta1: b1,
      beta2: b2,
      oneMinusBeta1: 1 - b1, // float64, before the f32 rounding of the kernels
      oneMinusBeta2: 1 - b2,
      eps: this.opts.eps,
      weightDecay: 0,
      biasCorrection1: 1 - b1 ** this.step,
      biasCorrection2: 1 - b2 ** this.step,
    };
    const items: AdamItem[] = [];
    for (const [name, p] of this.params) {
      const ps = parts(p), ms = parts(this.m.get(name)!), vs = parts(this.v.get(name)!);
      const weightDecay = this.opts.decay(name, p) ? this.opts.weightDecay : 0;
      ps.forEach((q, i) => {
        const g = grads.get(q);
        if (!g) return;
        items.push({
          p: q.storage,
          g: g.storage,
          m: ms[i].storage,
          v: vs[i].storage,
          n: q.size,
          weightDecay,
        });
      });
    }
    const dev = [...this.params.values()][0]?.backend;
    if (!dev) return;
    if (dev.adamwMany && items.length > 1) {
      // A few dispatches for all tensors (WebGPU), same arithmetic per element.
      dev.adamwMany(items, h, clip?.storage);
      return;
    }
    for (const it of items) {
      dev.adamw(it.p, it.g, it.m, it.v, it.n, { ...h, weightDecay: it.weightDecay }, clip?.storage);
    }
  }

  /** Bytes of optimizer state held on the device (two moments per trainable weight). */
  get stateBytes(): number {
    let n = 0;
    for (const t of this.m.values()) n += 2 * t.bytes;
    return n;
  }

  /** Copies the state to the host. */
  async getState(): Promise<OptimizerState> {
    const buffers: OptimizerState["buffers"] = {};
    for (const name of this.params.keys()) {
      buffers[name] = {
        m: (await this.m.get(name)!.toArray()) as Float32Array,
        v: (await this.v.get(name)!.toArray()) as Float32Array,
      };
    }
    return { kind: "adamw", step: this.step, buffers };
  }

  /** Restores a state from {@link getState}; names and sizes must match. */
  setState(s: OptimizerState): void {
    if (s.kind !== "adamw") throw new Error(`AdamW.setState: state is for ${s.kind}`);
    for (const [name, p] of this.params) {
      const b = s.buffers[name];
      if (!b || b.m?.length !== p.size || b.v?.length !== p.size) {
        throw new Error(`AdamW.setState: missing or mis-sized state for ${name}`);
      }
      this.m.get(name)!.dispose();
      this.v.get(name)!.dispose();
      this.m.set(name, stateLike(p, b.m));
      this.v.set(name, stateLike(p, b.v));
    }
    this.step = s.step;
  }

  /** Frees the moments. */
  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/** Options of {@link SGD}. */
export interface SGDOptions {
  /** Learning rate. Default 0.01. */
  lr?: number;
  /** Momentum μ. Default 0.9. */
  momentum?: number;
  /** L2 weight decay added to the gradient. Default 0. */
  weightDecay?: number;
}

/** SGD with (PyTorch-style) momentum: buf ← μ·buf + g + wd·p; p ← p - lr·buf. */
export class SGD {
  /** Hyper-parameters in use. */
  readonly opts: Required<SGDOptions>;
  /** Steps taken so far. */
  step = 0;
  private buf = new Map<string, Tensor>();

  /** Creates zero momentum buffers for every parameter. */
  constructor(readonly params: Map<string, Tensor>, opts: SGDOptions = {}) {
    this.opts = {
      lr: opts.lr ?? 0.01,
      momentum: opts.momentum ?? 0.9,
      weightDecay: opts.weightDecay ?? 0,
    };
    for (const [name, p] of params) this.buf.set(name, stateLike(p));
  }

  /** Applies one update (see {@link AdamW.update}). */
  update(grads: Map<Tensor, Tensor>, lr = this.opts.lr, clip?: Tensor): void {
    this.step++;
    for (const [name, p] of this.params) {
      const bs = parts(this.buf.get(name)!);
      parts(p).forEach((q, i) => {
        const g = grads.get(q);
        if (!g) return;
        q.backend.sgd(
          q.storage,
          g.storage,
          bs[i].storage,
          q.size,
          lr,
          this.opts.momentum,
          this.opts.weightDecay,
          clip?.storage,
        );
      });
    }
  }

  /** Copies the state to the host. */
  async getState(): Promise<OptimizerState> {
    const buffers: OptimizerState["buffers"] = {};
    for (const name of this.params.keys()) {
      buffers[name] = { buf: (await this.buf.get(name)!.toArray()) as Float32Array };
    }
    return { kind: "sgd", step: this.step, buffers };
  }

  /** Restores a state from {@link getState}. */
  setState(s: OptimizerState): void {
    if (s.kind !== "sgd") throw new Error(`SGD.setState: state is for ${s.kind}`);
    for (const [name, p] of this.params) {
      const b = s.buffers[name]?.buf;
      if (!b || b.length !== p.size) {
        throw new Error(`SGD.setState: missing or mis-sized state for ${name}`);
      }
      this.buf.get(name)!.dispose();
      this.buf.set(name, stateLike(p, b));
    }
    this.step = s.step;
  }

  /** Frees the buffers. */
  dispose(): void {
    for (const t of this.buf.values()) t.dispose();
  }
}
