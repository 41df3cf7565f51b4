/**
 * The fine-tuning API in one import: {@link preparePeft} and {@link PeftModel}, the config
 * ({@link PeftConfig}, {@link Method}, {@link METHODS}) and the method registry. The pieces live
 * in config.ts, peft_model.ts, prepare.ts, methods/ and registry.ts.
 *
 * @module
 */

export * from "./config.ts";
export * from "./peft_model.ts";
export * from "./prepare.ts";
export * from "./registry.ts";
