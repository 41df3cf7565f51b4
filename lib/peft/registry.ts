/**
 * The fine-tuning methods, one line each: `preparePeft` looks a method up here, and the train
 * flags offer the ones marked for the command line.
 *
 * @module
 */

import type { Method } from "./config.ts";
import { adapter } from "./methods/adapter.ts";
import { bitfit } from "./methods/bitfit.ts";
import { freezeLower } from "./methods/freeze_lower.ts";
import { full } from "./methods/full.ts";
import { lora } from "./methods/lora.ts";
import type { PeftMethod } from "./methods/method.ts";
import { sparse } from "./methods/sparse.ts";

export type { PeftMethod };

/** Every method by name. */
export const PEFT_METHODS: Readonly<Record<Method, PeftMethod>> = {
  qlora: lora,
  lora,
  full,
  adapter,
  bitfit,
  "freeze-lower": freezeLower,
  sparse,
};
