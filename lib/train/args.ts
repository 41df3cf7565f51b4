/**
 * The flags of `deno task train`: parsing (`node:util` parseArgs, strict), defaults that depend
 * on the method, and validation with one-line errors that name the flag and the problem.
 *
 * @example
 * ```ts
 * import { parseTrainArgs, UsageError } from "./args.ts";
 * try {
 *   const a = parseTrainArgs(["--method", "lora", "--rank", "4"]);
 *   if ("help" in a) console.log(a.help);
 *   else console.log(a.method, a.quant, a.rank, a.lr); // lora none 4 0.002
 * } catch (e) {
 *   if (!(e instanceof UsageError)) throw e;
 *   console.error(`train: ${e.message}`);
 * }
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { BackendChoice } from "../backend/device.ts";
import { DEFAULT_TARGETS, type Method as PeftMethodName } from "../peft/config.ts";
import { PEFT_METHODS } from "../peft/registry.ts";
import { BASE_QUANTS, type BaseQuant } from "../quant/formats/registry.ts";

export { DEFAULT_TARGETS };

/** A fine-tuning method `deno task train` offers: what is trained and what stays frozen. */
export type Method = Exclude<PeftMethodName, "sparse">;

/** The methods `deno task train` offers: the registry's, but those that need calibration data. */
export const METHODS: readonly Method[] = (Object.keys(PEFT_METHODS) as PeftMethodName[])
  .filter((m): m is Method => !PEFT_METHODS[m].needsCalibration);

/** Storage formats of the frozen base weights (the quantization registry's). */
export const QUANTS: readonly BaseQuant[] = BASE_QUANTS;
/** A storage format of the frozen base weights (`none` = f32). */
export type Quant = BaseQuant;

/** Backend names accepted by `--backend`. */
export const BACKENDS = ["cpu", "webgpu", "auto"] as const;

/** Methods whose trainable weights are small (and so take the higher default learning rate). */
const SMALL_METHODS: readonly Method[] = ["qlora", "lora", "adapter", "bitfit"];
/** Methods that use `--rank`, `--alpha`, `--rslora`, `--targets` and `--dropout`. */
const LORA_METHODS: readonly Method[] = ["qlora", "lora"];

/** The validated flags of `deno task train`. */
export interface TrainArgs {
  /** Fine-tuning method. Default `qlora`. */
  method: Method;
  /** Storage of the frozen base weights: `nf4` for qlora, else `none` unless given. */
  quant: Quant;
  /** LoRA rank r (also the bottleneck width of `adapter`). Default 8. */
  rank: number;
  /** LoRA α (scaling α/r, or α/√r with rsLoRA). Default 16. */
  alpha: number;
  /** rsLoRA scaling α/√r. Default false. */
  rslora: boolean;
  /** Module names that get adapters. Default `c_attn,c_proj,c_fc`. */
  targets: string[];
  /** Dropout on the LoRA input, in [0, 1). Default 0.05. */
  dropout: number;
  /** Optimizer steps. Default 300. */
  steps: number;
  /** Peak learning rate: 2e-3 for lora/qlora/adapter/bitfit, 3e-4 for full/freeze-lower. */
  lr: number;
  /** Sequences per micro-batch. Default 8. */
  batch: number;
  /** Micro-batches per optimizer step. Default 1. */
  gradAccum: number;
  /** Context length in tokens. Default 128. */
  ctx: number;
  /** Training data: a builtin corpus name or a `.txt`/`.jsonl` file. Default `moby-dick`. */
  data: string;
  /** Separate validation source, or null to hold out part of `data`. */
  val: string | null;
  /**
   * Instruction data: train on every token, prompts and user turns too (default false: only
   * completions and assistant turns are targets).
   */
  trainOnPrompt: boolean;
  /** Instruction data: pack several short examples into one context (default false). */
  pack: boolean;
  /** Base model directory. Default `data/base`. */
  base: string;
  /** Seed of adapter init, split, batches and dropout. Default 0. */
  seed: number;
  /** Run folder. Default `runs/<method>-<UTC timestamp>`; the resumed folder with `--resume`. */
  out: string;
  /** Run folder to continue, or null. */
  resume: string | null;
  /** Backend; undefined = `LORALAB_BACKEND` from the environment, else `auto`. */
  backend: BackendChoice | undefined;
  /** Validation every N steps (0 = only at the start and the end). Default 50. */
  evalEvery: number;
  /** Checkpoint every N steps (0 = only at the end). Default 100. */
  saveEvery: number;
  /**
   * Validation tokens per evaluation (whole windows of `ctx`; instruction data: rows of `ctx`),
   * null for the whole validation set (`all`), or 0 for the default sized to the model
   * ({@link defaultEvalTokens}: 24576, i.e. 24 batches of 8 × 128, up to ~20 M parameters; fewer
   * for bigger models, so a short run stays short).
   */
  evalTokens: number | null;
  /** Samples written before and after training (0 = none). Default 3. */
  samples: number;
  /** Tokens per sample, or 0 for the default sized to the model ({@link defaultSampleTokens}). */
  sampleTokens: number;
  /**
   * Recompute each block's activations in the backward pass instead of keeping them (less
   * memory, one more forward pass; the same numbers). null (the default) = auto: on for bases
   * of at least {@link AUTO_CHECKPOINT_PARAMS} parameters ({@link gradCheckpointFor}).
   */
  gradCheckpoint: boolean | null;
  /** freeze-lower: blocks frozen from the bottom; null = half of the model's blocks. */
  layers: number | null;
  /** Flags that were given but that the method ignores, one sentence each. */
  warnings: string[];
  /**
   * The flags given on the command line (names without `--`, e.g. `eval-every`), so that a
   * resumed run can tell a flag set on purpose from a default. Absent in run.json files written
   * before it existed.
   */
  given?: string[];
}

/** The answer to `--help`. */
export interface HelpRequest {
  /** The help text ({@link HELP}). */
  help: string;
}

/** A bad command line: the message is one line that names the flag; exit with {@link exitCode}. */
export class UsageError extends Error {
  /** Process exit status for usage errors. */
  readonly exitCode = 2;
  /** Creates the error with a one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The text printed by `deno task train --help`: every flag with its default. */
export const HELP = `deno task train [flags]   fine-tune the base model (QLoRA by default)

What is trained
  --method M        qlora | lora | full | adapter | bitfit | freeze-lower (default qlora)
  --quant Q         base weights: nf4 | fp4 | int8 | f16 | none
                    (default nf4 for qlora, none otherwise; qlora needs a quantized base)
  --rank R          LoRA rank; bottleneck width for adapter (default 8)
  --alpha A         LoRA alpha; scaling alpha/rank (default 16)
  --rslora          rank-stabilized scaling alpha/sqrt(rank) (default off)
  --targets LIST    comma-separated module names that get LoRA (default c_attn,c_proj,c_fc:
                    every linear layer of the blocks)
  --dropout P       dropout on the LoRA input, 0 <= P < 1 (default 0.05)
  --layers K        freeze-lower: blocks frozen from the bottom (default half of them)

How long and how fast
  --steps N         optimizer steps (default 300)
  --lr X            peak learning rate (default 0.002 for lora, qlora, adapter, bitfit;
                    0.0003 for full, freeze-lower)
  --batch B         sequences per micro-batch (default 8)
  --grad-accum G    micro-batches per optimizer step (default 1)
  --ctx T           context length in tokens (default 128)
  --grad-checkpoint recompute each block's activations in the backward pass: less memory for
                    long contexts and big batches, one more forward pass, the same numbers
                    (default: on for bases of 500 M parameters or more, as PEFT does for
                    QLoRA; --no-grad-checkpoint turns it off)
  --seed S          seed of init, split, batches and dropout, 0..4294967295 (default 0)

Data and files
  --data SRC        moby-dick | sotu | FILE.txt | FILE.jsonl (default moby-dick)
                    .jsonl rows: {"text"}, {"prompt","completion"} or {"messages":[...]}
  --val SRC         separate validation source (default: hold out part of --data)
  --train-on-prompt instruction data: also train on prompts and user turns (default: only
                    completions and assistant turns count in the loss)
  --pack            instruction data: pack several examples into one context (default: one
                    example per row, padded)
  --base DIR        base model directory (default data/base)
  --out DIR         run folder, must be new or empty (default runs/<method>-<UTC timestamp>)
  --resume DIR      continue the run in DIR from its last checkpoint, with the run's own
                    settings (its --eval-every and --save-every too); only the reporting
                    flags --eval-every, --eval-tokens, --samples, --sample-tokens,
                    --save-every and --backend may be given again, to change them
  --eval-every N    validate every N steps, 0 = start and end only (default 50)
  --eval-tokens N   validation tokens per evaluation, at least --ctx, or all (default auto:
                    24576 for models up to ~20 M parameters, fewer for bigger ones)
  --samples N       samples before and after training, 0 = none (default 3)
  --sample-tokens N tokens per sample (default auto: 160 up to ~125 M parameters, fewer for
                    bigger ones, at least 16)
  --save-every N    checkpoint every N steps, 0 = end only (default 100)
  --backend B       cpu | webgpu | auto (default: LORALAB_BACKEND, else auto)
  --help            this text`;

const OPTIONS = {
  method: { type: "string" },
  quant: { type: "string" },
  rank: { type: "string" },
  alpha: { type: "string" },
  rslora: { type: "boolean" },
  targets: { type: "string" },
  dropout: { type: "string" },
  steps: { type: "string" },
  lr: { type: "string" },
  batch: { type: "string" },
  "grad-accum": { type: "string" },
  ctx: { type: "string" },
  "grad-checkpoint": { type: "boolean" },
  "no-grad-checkpoint": { type: "boolean" },
  data: { type: "string" },
  val: { type: "string" },
  "train-on-prompt": { type: "boolean" },
  pack: { type: "boolean" },
  base: { type: "string" },
  seed: { type: "string" },
  out: { type: "string" },
  resume: { type: "string" },
  backend: { type: "string" },
  "eval-every": { type: "string" },
  "eval-tokens": { type: "string" },
  samples: { type: "string" },
  "sample-tokens": { type: "string" },
  "save-every": { type: "string" },
  layers: { type: "string" },
  help: { type: "boolean" },
} as const;

/** Decimal numbers only: no hex, no blanks, no `Infinity`. */
const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
/** A module name: identifier characters and dots (e.g. `c_attn`, `attn.c_proj`). */
const TARGET_RE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** `2026-11-28T20-54-07Z`: an ISO UTC timestamp with `-` for `:` (valid in file names). */
export function runTimestamp(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, "Z").replaceAll(":", "-");
}

/**
 * Parses and validates the train flags. Returns `{help}` for `--help`. Throws a
 * {@link UsageError} with one line naming the problem (`--rank 0: expected a positive integer`,
 * `unknown flag --foo`, ...). `now` fixes the default `--out` timestamp (for tests).
 */
export function parseTrainArgs(
  argv: readonly string[],
  now: Date = new Date(),
): TrainArgs | HelpRequest {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false })
      .values;
  } catch (e) {
    throw translateParseError(e);
  }
  if (values.help) return { help: HELP };
  const s = (name: keyof typeof OPTIONS) => values[name] as string | undefined;
  const given = (name: keyof typeof OPTIONS) => values[name] !== undefined;

  const method = oneOf("method", s("method") ?? "qlora", METHODS);
  const quant = oneOf("quant", s("quant") ?? (method === "qlora" ? "nf4" : "none"), QUANTS);
  if (method === "qlora" && quant === "none") {
    throw new UsageError(
      "--method qlora --quant none: QLoRA trains on a quantized base; use --method lora for f32",
    );
  }
  if (method === "full" && quant !== "none") {
    throw new UsageError(
      `--method full --quant ${quant}: full fine-tuning trains every weight in f32; drop --quant`,
    );
  }

  const rank = integer("rank", s("rank") ?? "8", 1);
  const alpha = positive("alpha", s("alpha") ?? "16");
  const rslora = values.rslora === true;
  const targets = parseTargets(s("targets"));
  const dropoutText = s("dropout") ?? "0.05";
  const dropout = number("dropout", dropoutText);
  if (!(dropout >= 0 && dropout < 1)) {
    throw new UsageError(`--dropout ${dropoutText}: expected a number in [0, 1)`);
  }
  const steps = integer("steps", s("steps") ?? "300", 1);
  const lr = positive("lr", s("lr") ?? (SMALL_METHODS.includes(method) ? "0.002" : "0.0003"));
  const batch = integer("batch", s("batch") ?? "8", 1);
  const gradAccum = integer("grad-accum", s("grad-accum") ?? "1", 1);
  const ctx = integer("ctx", s("ctx") ?? "128", 1);
  const seedText = s("seed") ?? "0";
  const seed = integer("seed", seedText, 0);
  if (seed > 0xffffffff) {
    throw new UsageError(`--seed ${seedText}: expected an integer in 0..4294967295`);
  }
  const evalEvery = integer("eval-every", s("eval-every") ?? "50", 0);
  const saveEvery = integer("save-every", s("save-every") ?? "100", 0);
  const evalTokensText = s("eval-tokens") ?? "auto";
  const evalTokens = evalTokensText === "all"
    ? null
    : evalTokensText === "auto"
    ? 0
    : integer("eval-tokens", evalTokensText, 1);
  if (evalTokens !== null && evalTokens !== 0 && evalTokens < ctx) {
    throw new UsageError(
      `--eval-tokens ${evalTokens}: expected at least one window of --ctx ${ctx} tokens, all or auto`,
    );
  }
  if (values["grad-checkpoint"] && values["no-grad-checkpoint"]) {
    throw new UsageError("--grad-checkpoint and --no-grad-checkpoint: give one of them");
  }
  const gradCheckpoint = values["grad-checkpoint"]
    ? true
    : values["no-grad-checkpoint"]
    ? false
    : null;
  const samples = integer("samples", s("samples") ?? "3", 0);
  const sampleTokensText = s("sample-tokens") ?? "auto";
  const sampleTokens = sampleTokensText === "auto"
    ? 0
    : integer("sample-tokens", sampleTokensText, 1);
  const layers = given("layers") ? integer("layers", s("layers")!, 0) : null;

  const data = path("data", s("data") ?? "moby-dick");
  const val = given("val") ? path("val", s("val")!) : null;
  const base = path("base", s("base") ?? "data/base");
  const resume = given("resume") ? path("resume", s("resume")!) : null;
  let out: string;
  if (resume !== null) {
    if (given("out") && stripSlash(s("out")!) !== stripSlash(resume)) {
      throw new UsageError(
        `--out ${s("out")} with --resume ${resume}: a resumed run continues in its own folder; ` +
          "drop --out",
      );
    }
    out = resume;
  } else {
    out = given("out") ? path("out", s("out")!) : `runs/${method}-${runTimestamp(now)}`;
  }
  const backend = given("backend")
    ? oneOf("backend", s("backend")!, BACKENDS) as BackendChoice
    : undefined;

  const warnings: string[] = [];
  if (!LORA_METHODS.includes(method)) {
    const loraOnly = ["alpha", "rslora", "targets", "dropout"] as const;
    const ignored = [...(method === "adapter" ? [] : ["rank" as const]), ...loraOnly]
      .filter(given);
    if (ignored.length > 0) {
      warnings.push(
        `${ignored.map((f) => `--${f}`).join(", ")} ignored: --method ${method} has no LoRA layers`,
      );
    }
  }
  if (given("layers") && method !== "freeze-lower") {
    warnings.push(`--layers ignored: it applies only to --method freeze-lower`);
  }

  return {
    method,
    quant,
    rank,
    alpha,
    rslora,
    targets,
    dropout,
    steps,
    lr,
    batch,
    gradAccum,
    ctx,
    data,
    val,
    trainOnPrompt: values["train-on-prompt"] === true,
    pack: values.pack === true,
    base,
    seed,
    out,
    resume,
    backend,
    evalEvery,
    saveEvery,
    evalTokens,
    samples,
    sampleTokens,
    gradCheckpoint,
    layers,
    warnings,
    // --no-grad-checkpoint counts as giving --grad-checkpoint (one setting, gradCheckpoint).
    given: [
      ...new Set(
        Object.keys(values).filter((k) => values[k] !== undefined).map((k) =>
          k === "no-grad-checkpoint" ? "grad-checkpoint" : k
        ),
      ),
    ],
  };
}

/**
 * The flags that change only what a run reports (or, `--grad-checkpoint`, its memory: the
 * numbers stay the same), not what it trains: a resumed run may take new values for them.
 */
export const REPORTING_FLAGS: readonly string[] = [
  "eval-every",
  "eval-tokens",
  "samples",
  "sample-tokens",
  "save-every",
  "grad-checkpoint",
];

/** Flags that may be given with `--resume`: where the run is, the reporting flags, the backend. */
export const RESUME_FLAGS: readonly string[] = ["resume", "out", ...REPORTING_FLAGS, "backend"];

/**
 * Parameters from which `--grad-checkpoint` is on by default: at half a billion parameters and
 * more, one micro-batch's activations rival the 4-bit model itself (TinyLlama's shape at
 * 1 × 128 tokens: 0.75 GB beside 1.0 GB of weights) while recomputing them costs one forward
 * pass of a step whose time the big products dominate. Smaller models keep their speed.
 */
export const AUTO_CHECKPOINT_PARAMS = 500e6;

/** Whether a run checkpoints activations: the flag when given, else by the model's size. */
export function gradCheckpointFor(args: Pick<TrainArgs, "gradCheckpoint">, params: number): {
  on: boolean;
  why: string;
} {
  if (args.gradCheckpoint !== null) {
    return {
      on: args.gradCheckpoint,
      why: args.gradCheckpoint ? "--grad-checkpoint" : "--no-grad-checkpoint",
    };
  }
  const m = (params / 1e6).toFixed(0);
  return params >= AUTO_CHECKPOINT_PARAMS
    ? { on: true, why: `${m} M parameters ≥ 500 M; --no-grad-checkpoint turns it off` }
    : { on: false, why: `${m} M parameters < 500 M` };
}

/** `grad-accum` → `gradAccum`: the TrainArgs field of a flag. */
export function flagField(flag: string): keyof TrainArgs {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof TrainArgs;
}

/**
 * The settings of a resumed run: `saved` (run.json's config) with the {@link REPORTING_FLAGS}
 * and `--backend` from `args` where they were given, else the run's own values (a run
 * checkpointed every 20 steps keeps doing so). A training setting given again with a different
 * value is a {@link UsageError}: the checkpoint was made with the run's settings, and silently
 * ignoring the flag would train something else than asked.
 */
export function resumedArgs(saved: TrainArgs, args: TrainArgs): TrainArgs {
  const given = args.given ?? [];
  const may = [...REPORTING_FLAGS, "backend"].map((f) => `--${f}`);
  for (const flag of given) {
    if (RESUME_FLAGS.includes(flag)) continue;
    const f = flagField(flag);
    if (JSON.stringify(args[f]) === JSON.stringify(saved[f])) continue;
    const was = Array.isArray(saved[f]) ? (saved[f] as string[]).join(",") : String(saved[f]);
    throw new UsageError(
      `--${flag} with --resume ${args.resume}: the run was started with --${flag} ${was}, and a ` +
        `resumed run keeps its settings (only ${may.slice(0, -1).join(", ")} and ${
          may.at(-1)
        } may change); drop --${flag}, or start a new run`,
    );
  }
  const out: Record<string, unknown> = {
    ...saved,
    resume: args.resume,
    out: args.resume!,
    backend: args.backend ?? saved.backend,
    warnings: args.warnings,
    given,
  };
  for (const flag of REPORTING_FLAGS) {
    const k = flagField(flag);
    if (given.includes(flag) || saved[k] === undefined) out[k] = args[k];
  }
  return out as unknown as TrainArgs;
}

function translateParseError(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const code = (e as { code?: string }).code;
  const quoted = /'(-[^' ]*)/.exec(e.message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    return new UsageError(`unknown flag ${quoted ?? "?"} (see --help)`);
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const arg = /'([^']*)'/.exec(e.message)?.[1] ?? "?";
    return new UsageError(`unexpected argument ${arg}: train takes only flags (see --help)`);
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const flag = quoted ?? "?";
    if (/does not take an argument/.test(e.message)) {
      return new UsageError(`${flag} takes no value`);
    }
    if (/ambiguous/.test(e.message)) {
      return new UsageError(
        `${flag}: missing value (a value starting with "-" must be written ${flag}=VALUE)`,
      );
    }
    return new UsageError(`${flag}: missing value`);
  }
  return new UsageError(e.message.split("\n")[0]);
}

function oneOf<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) {
    throw new UsageError(`--${flag} ${v}: expected one of ${allowed.join(", ")}`);
  }
  return v as T;
}

function number(flag: string, v: string): number {
  if (!NUMBER_RE.test(v)) throw new UsageError(`--${flag} ${show(v)}: expected a number`);
  return Number(v);
}

function positive(flag: string, v: string): number {
  const x = NUMBER_RE.test(v) ? Number(v) : NaN;
  if (!(x > 0) || !Number.isFinite(x)) {
    throw new UsageError(`--${flag} ${show(v)}: expected a positive number`);
  }
  return x;
}

function integer(flag: string, v: string, min: 0 | 1): number {
  const x = NUMBER_RE.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(x) || x < min) {
    const what = min === 1 ? "a positive integer" : "a non-negative integer";
    throw new UsageError(`--${flag} ${show(v)}: expected ${what}`);
  }
  return x;
}

function path(flag: string, v: string): string {
  if (v.trim() === "") throw new UsageError(`--${flag}: expected a non-empty value`);
  return v;
}

/** A value as shown in messages: `""` for an empty one. */
function show(v: string): string {
  return v === "" ? '""' : v;
}

function stripSlash(p: string): string {
  return p.replace(/\/+$/, "");
}

function parseTargets(v: string | undefined): string[] {
  if (v === undefined) return [...DEFAULT_TARGETS];
  const names = v.split(",").map((t) => t.trim());
  for (const n of names) {
    if (!TARGET_RE.test(n)) {
      throw new UsageError(
        `--targets ${v}: ${n === "" ? "empty name" : `bad module name "${n}"`} ` +
          "(expected a comma-separated list such as c_attn,c_proj)",
      );
    }
  }
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UsageError(`--targets ${v}: "${dup}" is listed twice`);
  return names;
}

/**
 * The default validation tokens per evaluation for a model of `params` parameters and context
 * `ctx`: 24576 (24 batches of 8 × 128) while that costs at most 5·10¹¹ parameter-tokens (~20 M
 * parameters), else 5·10¹¹ / params rounded down to whole windows, at least one window: about
 * half a minute of forward passes on a 2-core CPU at any size.
 */
export function defaultEvalTokens(params: number, ctx: number): number {
  const budget = Math.floor(5e11 / params);
  return Math.max(ctx, Math.floor(Math.min(24576, budget) / ctx) * ctx);
}

/**
 * The default tokens per sample for a model of `params` parameters: 160 up to 2·10¹⁰ / 160 =
 * 125 M parameters, then 2·10¹⁰ / params, at least 16 (a 1.1 B model: 18 tokens per sample).
 */
export function defaultSampleTokens(params: number): number {
  return Math.max(16, Math.min(160, Math.floor(2e10 / params)));
}
