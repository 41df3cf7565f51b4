/**
 * Setting up a fine-tuning run: the settings of a resumed run, the base model, the targets, and
 * the data (text streams or masked instruction examples), each failure an {@link InputError}
 * that names the flag.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { encodeDocuments, evalWindowCount } from "../data/batch.ts";
import { evalExampleBatches } from "../data/example_batch.ts";
import { type ChatFormat, loadChatFormat } from "../data/chat_template.ts";
import {
  countExampleTargets,
  type EncodedExample,
  encodeExamples,
  type EncodeOptions,
  type TargetCounts,
} from "../data/examples.ts";
import type { JsonlFormat } from "../data/instruct.ts";
import { splitByUnit } from "../data/split.ts";
import { loadTextSource, type TextSource } from "../data/text_source.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { isLoralabFolder, type LoadedModel, loadModel } from "../io/model_files.ts";
import { readJsonChecked } from "../io/read_file.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { DEFAULT_TARGETS, resumedArgs, type TrainArgs } from "./args.ts";
import { evaluate, evaluateBatches } from "./eval.ts";
import { InputError } from "./input_error.ts";
import { Progress } from "./progress.ts";
import { loadProgress } from "./progress.ts";
import { checkRunDir, readRunJson } from "./run_dir.ts";

/** A run's data. */
export interface RunData {
  /** Token stream (text), or the examples' ids end to end (instruction data, for digests). */
  train: Int32Array;
  /** The validation stream, or the validation examples' ids end to end. */
  val: Int32Array;
  /** The `--data` source. */
  source: TextSource;
  /** The `--val` source, or null when validation units were held out of `--data`. */
  valSource: TextSource | null;
  /** Labels of the held-out units (or the `--val` spec). */
  valLabels: string[];
  /** Instruction data only: the encoded examples and how their targets split. */
  instruct: InstructData | null;
}

/** Encoded instruction examples of a run. */
export interface InstructData {
  /** The rows' format. */
  format: Exclude<JsonlFormat, "text">;
  /** How conversations are rendered. */
  chat: ChatFormat;
  /** Training examples. */
  train: EncodedExample[];
  /** Validation examples. */
  val: EncodedExample[];
  /** Targets of the training examples within the context (what one epoch trains and masks). */
  trainCounts: TargetCounts;
  /** Targets of the validation examples within the context. */
  valCounts: TargetCounts;
}

/**
 * The settings a run goes with: `args` for a new run (after checking that `--out` can take it);
 * for `--resume`, run.json's settings as {@link resumedArgs} merges them (logged).
 */
export async function resolveRun(args: TrainArgs, log: (s: string) => void): Promise<TrainArgs> {
  await checkRunDir(args.resume ?? args.out, { resume: !!args.resume });
  if (!args.resume) return args;
  let m;
  try {
    m = await readRunJson(args.resume);
  } catch (e) {
    throw new InputError(`--resume ${args.resume}: ${(e as Error).message}`);
  }
  const resumed = resumedArgs(m.config as unknown as TrainArgs, args);
  log(
    `resuming with the run's settings: --eval-every ${resumed.evalEvery}, --save-every ${resumed.saveEvery}` +
      (resumed.backend ? `, --backend ${resumed.backend}` : ""),
  );
  return resumed;
}

/**
 * Loads `--base` onto `dev`. A Hugging Face checkpoint is quantized while it loads for
 * LoRA/QLoRA, so its f32 weights never all exist at once; a bitsandbytes 4-bit one loads its
 * 4-bit weights as stored. (A folder written by saveModel loads in f32 as it always has.) A
 * slow load (a big checkpoint) prints its progress and ETA every 10 s.
 */
export async function loadBase(args: TrainArgs, dev: Backend): Promise<LoadedModel> {
  try {
    const lora = args.method === "lora" || args.method === "qlora";
    const hfQuant = !(await isLoralabFolder(args.base)) || await isBnbBase(args.base);
    return await loadModel(args.base, dev, {
      quantize: lora && hfQuant ? args.quant : "none",
      onProgress: loadProgress(
        lora && hfQuant && args.quant !== "none"
          ? `loading and quantizing (${args.quant}) --base `
          : "loading --base ",
      ),
    });
  } catch (e) {
    throw new InputError(`--base ${args.base} is not a model folder: ${(e as Error).message}`);
  }
}

/**
 * The module names that get adapters: `--targets`, where GPT-2's default names mean "every block
 * linear" in another architecture's names.
 */
export function resolveTargets(args: TrainArgs, model: CausalLM): string[] {
  const gpt2Default = args.targets.join(",") === DEFAULT_TARGETS.join(",");
  return gpt2Default && model.arch !== "gpt2" ? [...model.peftLayout.defaultTargets] : args.targets;
}

/**
 * Validation loss of `model` over the first `evalTokens` tokens of the run's validation data
 * (null: all): whole windows of `T` for text, whole rows (examples) for instruction data, `B`
 * rows a batch. Silent when quick; on a big model, a progress line with the ETA every 10 s.
 */
export function validator(
  model: CausalLM,
  data: RunData,
  B: number,
  T: number,
  evalTokens: number | null,
): () => Promise<number> {
  const windows = evalTokens === null ? Infinity : Math.floor(evalTokens / T);
  const examples = data.instruct?.val.slice(0, windows) ?? null;
  const stream = data.val.subarray(0, Math.min(data.val.length, windows * T + 1));
  const rows = examples ? examples.length : evalWindowCount(stream.length, T);
  return () => {
    const p = new Progress(Math.ceil(rows / B), "validate ", 10, "stdout", true);
    const onBatch = (done: number) => p.update(done, { rows: Math.min(rows, done * B) });
    return examples
      ? evaluateBatches(model, evalExampleBatches(examples, B, T), Infinity, onBatch)
      : evaluate(model, stream, B, T, Infinity, onBatch);
  };
}

/** The log line that describes a run's data. */
export function dataSummary(args: TrainArgs, data: RunData): string {
  return `data: ${args.data} (${data.source.documents.length} ${data.source.unit}s), train ${data.train.length} tokens, ` +
    `val ${data.val.length} tokens (${data.valLabels.length} held out${
      data.valLabels.length <= 4 ? ": " + data.valLabels.join("; ") : ""
    })`;
}

/**
 * Loads `--data` (and `--val`, else holds out 10% of the units, seeded): text becomes token
 * streams; instruction data is rendered, tokenized and masked. Bad data is an {@link InputError}.
 */
export async function loadData(args: TrainArgs, tok: Tokenizer): Promise<RunData> {
  let source: TextSource;
  try {
    source = await loadTextSource(args.data);
  } catch (e) {
    throw new InputError(`--data ${args.data}: ${(e as Error).message}`);
  }
  let trainDocs = source.documents, valDocs: readonly string[], valLabels: string[];
  let valSource: TextSource | null = null;
  let valIndices: number[] | null = null;
  if (args.val) {
    try {
      valSource = await loadTextSource(args.val);
    } catch (e) {
      throw new InputError(`--val ${args.val}: ${(e as Error).message}`);
    }
    if (valSource.format !== source.format) {
      throw new InputError(
        `--val ${args.val}: its rows are ${valSource.format}, --data ${args.data}'s are ` +
          `${source.format}; validation needs the same format`,
      );
    }
    valDocs = valSource.documents;
    valLabels = [valSource.spec];
  } else {
    if (source.documents.length < 2) {
      throw new InputError(
        `--data ${args.data}: one document only; validation needs whole units held out ` +
          `(separate paragraphs by blank lines, or pass --val)`,
      );
    }
    const split = splitByUnit(source.documents, { valFraction: 0.1, seed: args.seed });
    trainDocs = split.train;
    valDocs = split.val;
    valLabels = split.valIndices.map((i) => source.labels[i]);
    valIndices = split.valIndices;
  }
  if (source.format !== "text") {
    const instruct = await loadInstruct(args, tok, source, valSource, valIndices);
    const ends = (es: EncodedExample[]) => { // the examples' ids end to end, for digests
      const out = new Int32Array(es.reduce((n, e) => n + e.ids.length, 0));
      let o = 0;
      for (const e of es) {
        out.set(e.ids, o);
        o += e.ids.length;
      }
      return out;
    };
    return {
      train: ends(instruct.train),
      val: ends(instruct.val),
      source,
      valSource,
      valLabels,
      instruct,
    };
  }
  const train = encodeDocuments(tok, trainDocs), val = encodeDocuments(tok, valDocs);
  if (train.length <= args.ctx + 1) {
    throw new InputError(
      `--data ${args.data}: ${train.length} training tokens, fewer than the context ${args.ctx} + 1`,
    );
  }
  if (val.length <= args.ctx) {
    throw new InputError(
      `validation data has ${val.length} tokens, fewer than the context ${args.ctx} + 1`,
    );
  }
  return { train, val, source, valSource, valLabels, instruct: null };
}

/** The chat format of the base folder `base` (its template, else the default); a bad template is
 * an {@link InputError} naming `--base`. */
export async function chatFormatOf(base: string, tok: Tokenizer): Promise<ChatFormat> {
  try {
    return await loadChatFormat(base, tok);
  } catch (e) {
    throw new InputError(`--base ${base}: ${(e as Error).message}`);
  }
}

/**
 * `source`'s instruction examples rendered with `chat`, tokenized and masked (encodeExamples); a
 * row the template cannot render is an {@link InputError} naming `file:line`.
 */
export function encodeInstruct(
  tok: Tokenizer,
  source: TextSource,
  chat: ChatFormat,
  opts: EncodeOptions,
): EncodedExample[] {
  try {
    return encodeExamples(tok, source.examples!, chat, source.spec, opts);
  } catch (e) {
    throw new InputError((e as Error).message);
  }
}

/**
 * Instruction data: renders (chat template of `--base`, or the default format), tokenizes and
 * masks the examples, split as the documents were (`valIndices`, or the --val file).
 */
async function loadInstruct(
  args: TrainArgs,
  tok: Tokenizer,
  source: TextSource,
  valSource: TextSource | null,
  valIndices: number[] | null,
): Promise<InstructData> {
  const chat = await chatFormatOf(args.base, tok);
  const opts = { trainOnPrompt: args.trainOnPrompt };
  const all = encodeInstruct(tok, source, chat, opts);
  const val = valSource
    ? encodeInstruct(tok, valSource, chat, opts)
    : valIndices!.map((i) => all[i]);
  const held = new Set(valSource ? [] : valIndices!);
  const train = all.filter((_, i) => !held.has(i));
  const trainCounts = countExampleTargets(train, args.ctx);
  const valCounts = countExampleTargets(val, args.ctx);
  if (trainCounts.trained === 0) {
    throw new InputError(
      `--data ${args.data}: no training targets within --ctx ${args.ctx} + 1 tokens (every ` +
        `completion is cut off or empty)`,
    );
  }
  if (valCounts.trained === 0) {
    throw new InputError(
      `validation data has no targets within --ctx ${args.ctx} + 1 tokens (every completion ` +
        `is cut off)`,
    );
  }
  return {
    format: source.format as InstructData["format"],
    chat,
    train,
    val,
    trainCounts,
    valCounts,
  };
}

/** One log line about instruction data: format, template, targets, cuts. */
export function instructSummary(args: TrainArgs, ins: InstructData): string {
  const c = ins.trainCounts;
  const pct = (100 * c.trained / Math.max(1, c.trained + c.masked)).toFixed(1);
  return `instruction data (${ins.format}, ${
    ins.chat.origin === "default" ? "default chat format" : `chat template ${ins.chat.origin}`
  }): ` +
    `${ins.train.length} train / ${ins.val.length} val examples; per epoch ${c.trained} targets ` +
    `trained, ${c.masked} masked (${pct}% trained${
      args.trainOnPrompt ? ", --train-on-prompt" : ""
    })` +
    `${args.pack ? ", packed" : ", one example per row"}` +
    (c.truncated > 0 ? `; ${c.truncated} examples cut at --ctx ${args.ctx} + 1 tokens` : "") +
    (c.empty > 0 ? `, ${c.empty} left with no target` : "");
}

/** The instruction-data part of run.json's `data`. */
export function instructManifest(args: TrainArgs, ins: InstructData): Record<string, unknown> {
  return {
    chatTemplate: ins.chat.origin,
    trainOnPrompt: args.trainOnPrompt,
    pack: args.pack,
    trainExamples: ins.train.length,
    valExamples: ins.val.length,
    trainTargets: { ...ins.trainCounts },
    valTargets: { ...ins.valCounts },
  };
}

/** A folder whose config.json says it holds bitsandbytes-quantized weights. */
async function isBnbBase(dir: string): Promise<boolean> {
  try {
    const cfg = await readJsonChecked(`${dir}/config.json`) as Record<string, unknown> | null;
    return cfg?.quantization_config != null;
  } catch {
    return false;
  }
}
