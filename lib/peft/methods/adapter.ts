/**
 * Bottleneck adapters after attention and MLP of every block.
 *
 * @module
 */

import type { Tensor } from "../../tensor.ts";
import { BottleneckAdapter } from "../bottleneck.ts";
import type { PeftMethod } from "./method.ts";

/** Bottleneck adapters after attention and MLP of every block. */
export const adapter: PeftMethod = {
  trainsLinear: () => false,
  prepare(pm, model, c) {
    const add2 = (name: string, t: Tensor) => pm.trainable.set(name, t);
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
  },
};
