/**
 * Sparse: the top `sparsity` fraction of block weights by accumulated |gradient| on calibration batches train.
 *
 * @module
 */

import { Tape } from "../../autograd/tape.ts";
import { abs } from "../../ops/abs.ts";
import { add } from "../../ops/elementwise.ts";
import { fmtShape, scope, Tensor } from "../../tensor.ts";
import type { PeftMethod } from "./method.ts";

/** Sparse: the top `sparsity` fraction of block weights by accumulated |gradient| on calibration batches train. */
export const sparse: PeftMethod = {
  needsCalibration: true,
  trainsLinear: () => true,
  async prepare(pm, model, c, calibration) {
    const add2 = (name: string, t: Tensor) => pm.trainable.set(name, t);
    if (calibration.length === 0) {
      throw new Error("preparePeft: sparse needs calibration batches");
    }
    const weights = [...model.namedParameters()].filter(([n, t]) =>
      model.blockIndex(n) >= 0 && t.ndim === 2
    );
    for (const [n, t] of weights) {
      if (t.chunks) {
        throw new Error(
          `preparePeft: sparse would mask ${n} ${fmtShape(t.shape)}, which is stored in ` +
            `${t.chunks.length} row chunks (larger than the largest buffer of ` +
            `${t.backend.description}); sparse masks of split tensors are not supported: use ` +
            "full, lora or qlora",
        );
      }
    }
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
  },
};
