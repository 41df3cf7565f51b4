/**
 * BitFit: only biases (of linears and norms) train.
 *
 * @module
 */

import type { Tensor } from "../../tensor.ts";
import type { PeftMethod } from "./method.ts";

/** BitFit: only biases (of linears and norms) train. */
export const bitfit: PeftMethod = {
  trainsLinear: () => false,
  prepare(pm, model) {
    const add2 = (name: string, t: Tensor) => pm.trainable.set(name, t);
    for (const [n, t] of model.namedParameters()) if (n.endsWith(".bias")) add2(n, t);
    if (pm.trainable.size === 0) {
      throw new Error(`preparePeft: bitfit trains biases, and this ${model.arch} model has none`);
    }
  },
};
