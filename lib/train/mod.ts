/**
 * Training runs: the flags of `deno task train`, the run folder (run.json, samples.txt),
 * metrics.jsonl, atomic checkpoints, the offline HTML report, evaluation, progress lines and
 * version facts.
 *
 * @example
 * ```ts
 * import { parseTrainArgs, prepareRunDir } from "./mod.ts";
 * const args = parseTrainArgs(["--method", "lora", "--steps", "10"]);
 * if (!("help" in args)) await prepareRunDir(args.out, { resume: args.resume !== null });
 * ```
 *
 * @module
 */

export * from "./args.ts";
export * from "./metrics.ts";
export * from "./checkpoint.ts";
export * from "./report.ts";
export * from "./run_dir.ts";
export * from "./eval.ts";
export * from "./eval_text.ts";
export * from "./progress.ts";
export * from "./versions.ts";
export * from "./step.ts";

// Types from elsewhere in loralab that this module's API mentions (evaluate() takes a GPT,
// checkpoints hold optimizer and sampler states), so that its documentation is complete.
export type { BackendChoice } from "../backend/device.ts";
export type { BatchSamplerState } from "../data/batch.ts";
export type { DataPackage } from "../data/npm_package.ts";
export type { OptimizerState } from "../optim/optimizers.ts";
export type * from "../nn/gpt.ts";
export type { Batch } from "../data/batch.ts";
export type { EncodedExample } from "../data/examples.ts";
export type { Method as PeftMethodName } from "../peft/config.ts";
export * from "../api_types.ts";
export type { AdamW, AdamWOptions } from "../optim/optimizers.ts";
