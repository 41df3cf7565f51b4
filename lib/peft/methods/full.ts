/**
 * Full fine-tuning: every parameter trains.
 *
 * @module
 */

import type { PeftMethod } from "./method.ts";

/** Full fine-tuning: every parameter trains. */
export const full: PeftMethod = {
  trainsLinear: () => true,
  prepare(pm, model) {
    for (const [n, t] of model.namedParameters()) pm.trainable.set(n, t);
  },
};
