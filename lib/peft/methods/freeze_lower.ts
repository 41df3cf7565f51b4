/**
 * Freeze-lower: blocks below `layers` are frozen; the rest, the final norm and an untied head train.
 *
 * @module
 */

import type { Tensor } from "../../tensor.ts";
import type { PeftMethod } from "./method.ts";

/** Freeze-lower: blocks below `layers` are frozen; the rest, the final norm and an untied head train. */
export const freezeLower: PeftMethod = {
  trainsLinear: (model, c, path) => model.blockIndex(path) >= c.layers,
  prepare(pm, model, c) {
    const named = model.namedParameters();
    const add2 = (name: string, t: Tensor) => pm.trainable.set(name, t);
    const out = model.outputWeight;
    for (const [n, t] of model.namedParameters()) {
      const bi = model.blockIndex(n);
      if (bi >= 0 ? bi >= c.layers : model.finalNormNames.includes(n)) add2(n, t);
    }
    // A tied head is also the input embedding: it trains only when every block is frozen.
    if (!out.tied || c.layers === model.numLayers) add2(out.name, named.get(out.name)!);
  },
};
