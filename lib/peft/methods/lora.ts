/**
 * LoRA and QLoRA: rank-r adapters on the targeted linears (QLoRA: over a quantized frozen base).
 *
 * @module
 */

import type { Linear } from "../../nn/linear.ts";
import type { QuantLinear } from "../../nn/quant_linear.ts";
import type { Tensor } from "../../tensor.ts";
import { matchesTarget } from "../config.ts";
import { LoraLinear } from "../lora.ts";
import type { PeftMethod } from "./method.ts";

/** LoRA and QLoRA: rank-r adapters on the targeted linears (QLoRA: over a quantized frozen base). */
export const lora: PeftMethod = {
  trainsLinear: () => false,
  prepare(pm, model, c) {
    const add2 = (name: string, t: Tensor) => pm.trainable.set(name, t);
    let i = 0;
    for (const [path, lin] of model.linears()) {
      if (!matchesTarget(path, c.targets)) continue;
      const l = new LoraLinear(lin as Linear | QuantLinear, {
        r: c.r,
        alpha: c.alpha,
        dropout: c.dropout,
        rslora: c.rslora,
        seed: c.seed * 1000 + i++,
        dropoutRng: pm.dropoutRng,
      });
      model.setLinear(path, l);
      pm.loraLayers.set(path, l);
      add2(`${path}.lora_A.weight`, l.loraA);
      add2(`${path}.lora_B.weight`, l.loraB);
    }
    if (pm.loraLayers.size === 0) {
      throw new Error(
        `preparePeft: targets ${c.targets.join(",")} match no linear layer ` +
          `(layers are named like ${[...model.linears().keys()][0]})`,
      );
    }
  },
};
