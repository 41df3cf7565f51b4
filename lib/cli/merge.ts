/**
 * `deno task merge --adapter DIR --out DIR [--base DIR]`: folds a LoRA/QLoRA adapter into its base
 * model (W + s·B·A) and writes a plain Hugging Face folder (config.json without any
 * quantization_config, model.safetensors in the base's dtype and tensor names, the tokenizer
 * files) that `deno task generate --model DIR`, `loadModel` and transformers'
 * `from_pretrained(DIR)` load with no adapter and no bitsandbytes. A QLoRA adapter merges into
 * the de-quantized base it was trained against (see lib/peft/merge.ts).
 *
 * Exit codes: 0 written, 2 bad input (flags, base, adapter, an existing non-empty --out),
 * 1 failure while writing. Errors are one line on stderr.
 *
 * @module
 */

import { type FlagSpec, parseFlags, requiredPath, UsageError } from "./flags.ts";
import { checkEmptyOut, type MergePlan, planMerge, writeMerge } from "../peft/merge.ts";
import { outPermissionProblem } from "./out_permission.ts";

const HELP =
  `deno task merge --base DIR --adapter DIR --out DIR   merge a LoRA adapter into its base

  --base DIR      the base model: data/base, a folder of saveModel, or a Hugging Face GPT-2 /
                  Llama folder (F32/F16/BF16, or bitsandbytes 4-bit: de-quantized)
  --adapter DIR   the adapter (adapter_config.json + adapter_model.safetensors), e.g. a run
                  folder of deno task train; a QLoRA adapter merges into the de-quantized base
  --out DIR       the merged model folder (new or empty; files written atomically)
  --help`;

const OPTIONS: FlagSpec = {
  base: { type: "string" },
  adapter: { type: "string" },
  out: { type: "string" },
  help: { type: "boolean" },
};

function fail(msg: string, code: number): never {
  console.error(`merge: ${msg}`);
  Deno.exit(code);
}

let base: string, adapter: string, out: string;
try {
  const a = parseFlags("merge", Deno.args, OPTIONS);
  if (a.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  base = a.base === undefined ? "data/base" : requiredPath("base", a.base);
  adapter = requiredPath("adapter", a.adapter);
  out = requiredPath("out", a.out);
} catch (e) {
  fail((e as Error).message, e instanceof UsageError ? 2 : 1);
}

// The process may write only where it was allowed (`deno task merge` grants its --out): say so
// before any work, not as a permission error at the first file.
const problem = outPermissionProblem("merge", out);
if (problem) fail(problem, 2);

let plan: MergePlan;
try {
  await checkEmptyOut(out).catch((e) => {
    throw new Error(`--out ${(e as Error).message}`);
  });
  plan = await planMerge(base, adapter);
} catch (e) {
  fail((e as Error).message.split("\n")[0], 2);
}
const q = plan.quant;
console.log(
  `merge: ${plan.adapter} (LoRA r=${plan.rank}, α=${plan.alpha}, scale ${plan.scaling}, ` +
    `${plan.merged.length} layers) into ${plan.base} (${plan.arch})`,
);
if (plan.bnbBase) {
  console.log(
    `merge: the base is a bitsandbytes ${plan.bnbBase} checkpoint: its 4-bit weights are ` +
      `DE-QUANTIZED and written as ${plan.dtype}`,
  );
}
if (q !== "none") {
  const fmt = q === "nf4" || q === "fp4"
    ? `${q}, block ${plan.blockSize}${plan.doubleQuant ? ", double quantization" : ""}`
    : q;
  console.log(
    `merge: QLoRA adapter: merged into the DE-QUANTIZED ${fmt} base, the weights it was ` +
      "trained against (not the original full-precision weights)",
  );
}
try {
  await writeMerge(plan, out);
} catch (e) {
  fail(`writing ${out}: ${(e as Error).message.split("\n")[0]}`, 1);
}
console.log(
  `merge: wrote ${out}/ (config.json, model.safetensors ${plan.dtype}` +
    `${plan.copied.length ? ", " + plan.copied.join(", ") : ""})`,
);
