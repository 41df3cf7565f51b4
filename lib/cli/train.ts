/**
 * `deno task train`: the QLoRA fine-tuning command (see `--help`). With no flags it fine-tunes
 * the shipped base model in data/base/ on Moby Dick with QLoRA (NF4 + double quantization,
 * r = 8, α = 16, every linear layer of the blocks) and writes runs/<name>/.
 *
 * Exit codes: 0 done (or stopped with a checkpoint by Ctrl-C: 130), 1 run-time failure, 2 bad
 * input (flags, data, base folder). Errors are one line on stderr.
 *
 * @module
 */

import { type HelpRequest, parseTrainArgs, type TrainArgs, UsageError } from "../train/args.ts";
import { finetune, InputError } from "../train/finetune.ts";
import { outPermissionProblem } from "./out_permission.ts";

let args: TrainArgs | HelpRequest;
try {
  args = parseTrainArgs(Deno.args);
} catch (e) {
  console.error(`train: ${(e as Error).message}`);
  Deno.exit(e instanceof UsageError ? 2 : 1);
}
if ("help" in args) {
  console.log(args.help);
  Deno.exit(0);
}
for (const w of args.warnings) console.error(`train: note: ${w}`);
// The process may write only where it was allowed (`deno task train` grants the --out or
// --resume folder, else runs/): say so before any work, not as a permission error at the first
// file.
const problem = outPermissionProblem("train", args.out);
if (problem) {
  console.error(`train: ${problem}`);
  Deno.exit(2);
}
try {
  const r = await finetune(args);
  if (r.interrupted) Deno.exit(130);
} catch (e) {
  console.error(`train: ${(e as Error).message}`);
  Deno.exit(e instanceof InputError || e instanceof UsageError ? 2 : 1);
}
