/**
 * `deno task generate --prompt "…"`: samples text from a model directory (default: the shipped
 * base model in data/base/; Hugging Face GPT-2 and Llama folders work too), optionally with a
 * LoRA adapter (a run folder of `deno task train`, or any PEFT adapter folder) on top.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { getDevice } from "../backend/device.ts";
import { generate } from "../nn/generate.ts";
import { loadWithAdapter } from "../peft/load_adapted.ts";
import { loadProgress } from "../train/progress.ts";

const HELP = `deno task generate [flags]   sample text from a model

  --prompt TEXT       text to continue (default "The state of the Union")
  --model DIR         model directory (default data/base), or a Hugging Face GPT-2/Llama folder
  --base DIR          the same as --model (the name deno task train uses)
  --adapter DIR       LoRA adapter folder (adapter_config.json + adapter_model.safetensors,
                      e.g. a run of deno task train) applied to the model
  --max-tokens N      tokens to sample (default 300)
  --temperature X     softmax temperature, 0 = greedy (default 0.8)
  --top-k K           sample among the K most likely tokens, 0 = all (default 40)
  --seed S            sampler seed (default 0)
  --backend cpu|webgpu|auto
  --help`;

function parse() {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        prompt: { type: "string", default: "The state of the Union" },
        model: { type: "string", default: "data/base" },
        base: { type: "string" },
        adapter: { type: "string" },
        "max-tokens": { type: "string", default: "300" },
        temperature: { type: "string", default: "0.8" },
        "top-k": { type: "string", default: "40" },
        seed: { type: "string", default: "0" },
        backend: { type: "string" },
        help: { type: "boolean", default: false },
      },
    }).values;
  } catch (e) {
    console.error(`generate: ${(e as Error).message} (see --help)`);
    Deno.exit(2);
  }
}
const a = parse();
if (a.help) {
  console.log(HELP);
  Deno.exit(0);
}
const maxTokens = Number(a["max-tokens"]), temperature = Number(a.temperature);
const topK = Number(a["top-k"]), seed = Number(a.seed);
for (
  const [k, v, ok] of [
    ["max-tokens", maxTokens, Number.isInteger(maxTokens) && maxTokens > 0],
    ["temperature", temperature, temperature >= 0],
    ["top-k", topK, Number.isInteger(topK) && topK >= 0],
    ["seed", seed, Number.isInteger(seed)],
  ] as const
) {
  if (!ok) {
    console.error(`generate: --${k} ${v} is not valid (see --help)`);
    Deno.exit(2);
  }
}
if (a.backend && !["cpu", "webgpu", "auto"].includes(a.backend)) {
  console.error(`generate: --backend ${a.backend}: expected cpu, webgpu or auto`);
  Deno.exit(2);
}
try {
  const dev = await getDevice({ backend: a.backend as "cpu" | "webgpu" | "auto" | undefined });
  // With an adapter, the base is built as training built it (quantized while loading where
  // training did); a big checkpoint shows its loading progress on stderr.
  const { model, tokenizer } = await loadWithAdapter(a.base ?? a.model, a.adapter ?? null, dev, {
    onProgress: loadProgress("loading the model ", "stderr"),
  });
  const ids = await generate(model, tokenizer.encode(a.prompt), {
    maxTokens,
    temperature,
    topK,
    seed,
    stopToken: tokenizer.eotToken,
    vocabSize: tokenizer.vocabSize,
  });
  console.log(a.prompt + tokenizer.decode(ids.filter((t) => t !== tokenizer.eotToken)));
} catch (e) {
  console.error(`generate: ${(e as Error).message}`);
  Deno.exit(1);
}
