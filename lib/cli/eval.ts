/**
 * `deno task eval --data SRC [--base DIR] [--adapter DIR]`: loss (nats/token), perplexity,
 * bits per token and bits per byte of a model (optionally with a LoRA adapter) on a text file or
 * builtin corpus, over in-order windows of `--ctx` tokens, the first `--eval-tokens` tokens
 * (default 65536; `all` for the whole data). Progress goes to stderr; `--json` prints one JSON
 * object on stdout for scripts.
 *
 * Exit codes: 0 done, 2 bad input (flags, base, adapter, data), 1 failure while evaluating.
 *
 * @module
 */

import { type BackendChoice, getDevice } from "../backend/device.ts";
import { loadTextSource } from "../data/text_source.ts";
import { loadWithAdapter } from "../peft/load_adapted.ts";
import { evaluateExamples, evaluateText, type TextEvalResult } from "../train/eval_text.ts";
import { loadProgress, Progress } from "../train/progress.ts";
import { InputError } from "../train/input_error.ts";
import { chatFormatOf, encodeInstruct } from "../train/setup.ts";
import { type FlagSpec, nonEmpty, oneOf, parseFlags, positiveInt, UsageError } from "./flags.ts";

/** Tokens evaluated when --eval-tokens is not given. */
const DEFAULT_EVAL_TOKENS = 65536;

const HELP = `deno task eval --data SRC [flags]   loss, perplexity and bits per byte of a model

  --data SRC          moby-dick | sotu | FILE.txt | FILE.jsonl (required); instruction or chat
                      JSONL is rendered as training renders it (the base's chat template) and
                      scored on completions / assistant turns only, one example per window
  --base DIR          model folder (default data/base), or a Hugging Face GPT-2/Llama folder
  --adapter DIR       LoRA adapter folder applied to the model (e.g. a run of deno task train)
  --ctx T             tokens per window (default: the model's context, at most 1024)
  --batch B           windows per batch (default 8)
  --eval-tokens N     evaluate the first N tokens of the data, or all (default ${DEFAULT_EVAL_TOKENS})
  --include-prompt    instruction data: score the prompt tokens too (as --train-on-prompt)
  --json              print one JSON object on stdout instead of text
  --backend cpu|webgpu|auto
  --help`;

const OPTIONS: FlagSpec = {
  data: { type: "string" },
  base: { type: "string" },
  adapter: { type: "string" },
  ctx: { type: "string" },
  batch: { type: "string" },
  "eval-tokens": { type: "string" },
  json: { type: "boolean" },
  "include-prompt": { type: "boolean" },
  backend: { type: "string" },
  help: { type: "boolean" },
};

function fail(msg: string, code: number): never {
  console.error(`eval: ${msg.split("\n")[0]}`);
  Deno.exit(code);
}

let a: Record<string, string | boolean | undefined>;
let evalTokens = DEFAULT_EVAL_TOKENS, ctxFlag: number | null = null, batch = 8;
let backend: BackendChoice | undefined;
try {
  a = parseFlags("eval", Deno.args, OPTIONS);
  if (a.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  if (a.data === undefined) throw new UsageError("--data SRC is required (see --help)");
  nonEmpty("data", a.data as string);
  if (a.base !== undefined) nonEmpty("base", a.base as string);
  if (a.adapter !== undefined) nonEmpty("adapter", a.adapter as string);
  if (a.ctx !== undefined) ctxFlag = positiveInt("ctx", a.ctx as string);
  if (a.batch !== undefined) batch = positiveInt("batch", a.batch as string);
  const et = a["eval-tokens"] as string | undefined;
  if (et !== undefined) evalTokens = et === "all" ? Infinity : positiveInt("eval-tokens", et);
  if (a.backend !== undefined) {
    backend = oneOf("backend", a.backend as string, ["cpu", "webgpu", "auto"] as const);
  }
} catch (e) {
  fail((e as Error).message, e instanceof UsageError ? 2 : 1);
}
const base = (a.base as string | undefined) ?? "data/base";
const adapter = (a.adapter as string | undefined) ?? null;
const data = a.data as string;

let loaded, source, dev;
try {
  dev = await getDevice({ backend });
  source = await loadTextSource(data).catch((e) => {
    throw new Error(`--data ${data}: ${(e as Error).message}`);
  });
  loaded = await loadWithAdapter(base, adapter, dev, {
    onProgress: loadProgress("eval: loading the model ", "stderr"),
  });
} catch (e) {
  fail((e as Error).message, 2);
}
const model = loaded.model;
const ctx = ctxFlag ?? Math.min(model.contextLength, 1024);
if (ctx > model.contextLength) {
  fail(`--ctx ${ctx} exceeds the model's context length ${model.contextLength}`, 2);
}

const instruct = source.format === "prompt-completion" || source.format === "chat";
let r: TextEvalResult;
try {
  let progress: Progress | null = null; // sized at the first report, when windows are known
  const opts = {
    ctx,
    batch,
    maxTokens: evalTokens,
    onProgress: (done: number, total: number) => {
      progress ??= new Progress(
        total,
        instruct ? "eval: examples " : "eval: windows ",
        10,
        "stderr",
      );
      progress.update(done, instruct ? {} : { tokens: done * ctx });
    },
  };
  if (instruct) {
    const chat = await chatFormatOf(base, loaded.tokenizer);
    const examples = encodeInstruct(loaded.tokenizer, source, chat, {
      trainOnPrompt: a["include-prompt"] === true,
    });
    r = await evaluateExamples(model, loaded.tokenizer, examples, opts);
  } else {
    r = await evaluateText(model, loaded.tokenizer, source.documents, opts);
  }
} catch (e) {
  const msg = (e as Error).message;
  fail(msg, e instanceof InputError || /fewer than one window|no targets/.test(msg) ? 2 : 1);
}
model.dispose();

const what = `${base}${adapter ? ` + adapter ${adapter}` : ""} on ${data}`;
const unit = instruct
  ? `${r.windows} examples, ${r.streamTokens} tokens`
  : `${r.streamTokens} tokens`;
const scope = r.truncated
  ? `the first ${unit} (--eval-tokens ${
    evalTokens === DEFAULT_EVAL_TOKENS && a["eval-tokens"] === undefined ? "default " : ""
  }${evalTokens}; --eval-tokens all for the whole data)`
  : `all ${unit}`;
const scored = !instruct
  ? "every token"
  : a["include-prompt"]
  ? "every token of each example (--include-prompt)"
  : "completions / assistant turns only (prompts masked)";
if (a.json) {
  console.log(JSON.stringify({
    base,
    adapter,
    data,
    data_sha256: source.sha256,
    backend: dev.kind,
    ctx,
    batch,
    eval_tokens: Number.isFinite(evalTokens) ? evalTokens : "all",
    truncated: r.truncated,
    stream_tokens: r.streamTokens,
    windows: r.windows,
    tokens: r.tokens,
    bytes: r.bytes,
    loss: r.loss,
    perplexity: r.perplexity,
    bits_per_token: r.bitsPerToken,
    bits_per_byte: r.bitsPerByte,
    data_format: source.format,
    scored: instruct ? (a["include-prompt"] ? "all" : "completions") : "all",
    ...(instruct ? { examples: r.windows } : {}),
  }));
} else {
  console.log(`eval: ${what}: ${scope}; scored: ${scored}`);
  console.log(
    `loss ${r.loss.toFixed(4)} nats/token | perplexity ${fmt(r.perplexity)} | ` +
      `${r.bitsPerToken.toFixed(4)} bits/token | ${r.bitsPerByte.toFixed(4)} bits/byte`,
  );
  console.log(
    `(${r.tokens} tokens predicted in ${r.windows} ${instruct ? "examples" : "windows"} of ` +
      `${instruct ? "at most " : ""}${ctx}, spelling ${r.bytes} UTF-8 bytes; backend ${dev.kind})`,
  );
}

function fmt(x: number): string {
  return x >= 100 ? x.toFixed(1) : x.toFixed(3);
}
