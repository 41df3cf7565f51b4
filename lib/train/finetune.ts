/**
 * The fine-tuning run behind `deno task train`: load the base model, hold out validation units,
 * prepare the method, train with progress, checkpoints and exact resume, and write the run folder
 * (PEFT adapter files, metrics.jsonl, run.json, samples.txt, report.html).
 *
 * It reads as a table of contents: setup (setup.ts) → the base model's validation loss and
 * samples (samples.ts) → the method (preparePeft) → a new or restored run (start.ts) → the loop
 * (loop.ts, one step.ts step each) → the finish (finish.ts).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { getDevice } from "../backend/device.ts";
import { BatchSampler } from "../data/batch.ts";
import { ExampleSampler } from "../data/example_batch.ts";
import { hashModelWeights } from "../io/hf.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { QuantLinear } from "../nn/quant_linear.ts";
import { AdamW } from "../optim/optimizers.ts";
import { cosineSchedule } from "../optim/schedule.ts";
import { type ParamCounts, preparePeft } from "../peft/apply.ts";
import {
  defaultEvalTokens,
  defaultSampleTokens,
  gradCheckpointFor,
  type TrainArgs,
} from "./args.ts";
import { configHash, resumeSettings } from "./checkpoint.ts";
import { natsToBits } from "./eval.ts";
import { finishRun } from "./finish.ts";
import { InputError } from "./input_error.ts";
import { runLoop } from "./loop.ts";
import { preflight } from "./preflight.ts";
import { samplePrompts, samplesFrom } from "./samples.ts";
import {
  dataSummary,
  instructSummary,
  loadBase,
  loadData,
  resolveRun,
  resolveTargets,
  validator,
} from "./setup.ts";
import { recordMemory } from "./run_dir.ts";
import { startRun } from "./start.ts";

export { InputError };

/** What a finished (or stopped) run reports. */
export interface FinetuneResult {
  /** The run folder. */
  runDir: string;
  /** Steps completed. */
  step: number;
  /** Training loss of each step of this process. */
  losses: number[];
  /** Validation loss before training (nats/token). */
  valBefore: number;
  /** Validation loss at the end (nats/token), NaN if stopped early. */
  valAfter: number;
  /** Whether the run was interrupted (Ctrl-C) and checkpointed. */
  interrupted: boolean;
}

/** Hooks for tests and notebooks. */
export interface FinetuneHooks {
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
  /** Stop (as if interrupted) after this many steps of this process. */
  stopAfter?: number;
  /** Backend to use instead of resolving `args.backend`. */
  device?: Backend;
}

/** Runs (or resumes) a fine-tuning run as `args` describe. */
export async function finetune(
  args: TrainArgs,
  hooks: FinetuneHooks = {},
): Promise<FinetuneResult> {
  const log = hooks.log ?? ((s: string) => console.log(s));
  const t0 = performance.now();

  // Setup: settings, backend, base model, targets, data, the hash a resume must match.
  args = await resolveRun(args, log);
  const dev = hooks.device ?? await getDevice({ backend: args.backend });
  log(`backend: ${dev.kind} (${dev.description})`);
  const { model, tokenizer: tok } = await loadBase(args, dev);
  const targets = resolveTargets(args, model);
  preflight(args, model, dev, targets);
  const data = await loadData(args, tok);
  log(dataSummary(args, data));
  const instruct = data.instruct;
  if (instruct) log(instructSummary(args, instruct));
  else if (args.trainOnPrompt || args.pack) {
    log(`--train-on-prompt and --pack apply to instruction data only; ${args.data} is text`);
  }
  const baseSha = await hashModelWeights(args.base);
  const hash = await configHash({
    settings: resumeSettings(args),
    base: baseSha,
    data: data.source.sha256,
    val: data.valSource?.sha256 ?? null,
  });

  // The base model: validation loss and samples before training (on resume: from the checkpoint).
  const B = args.batch, T = args.ctx;
  // Validation: the first --eval-tokens tokens, whole windows (instruction data: whole rows).
  // 0 means "sized to the model" (the defaults keep a run on a big model short).
  const params = parameterCount(model);
  const evalTokens = args.evalTokens === 0 ? defaultEvalTokens(params, T) : args.evalTokens;
  const sampleTokens = args.sampleTokens || defaultSampleTokens(params);
  // --grad-checkpoint: the flag, else on from 500 M parameters; the run records what it did.
  const ck = gradCheckpointFor(args, params);
  if (ck.on && args.gradCheckpoint === null) log(`gradient checkpointing on (${ck.why})`);
  args = { ...args, gradCheckpoint: ck.on };
  if (args.evalTokens === 0 || args.sampleTokens === 0) {
    log(
      `validation ${evalTokens ?? "all"} tokens per evaluation, samples of ${sampleTokens} ` +
        `tokens (sized for ${(params / 1e6).toFixed(1)} M parameters; ` +
        "--eval-tokens and --sample-tokens set them)",
    );
  }
  const validate = validator(model, data, B, T, evalTokens);
  const prompts = samplePrompts(tok, instruct?.val ?? null, args.samples);
  const sampleOpts = { seed: args.seed, maxTokens: sampleTokens };
  const before = { val: NaN, samples: [] as string[] };
  if (!args.resume) {
    before.val = await validate();
    before.samples = await samplesFrom(model, null, tok, prompts, sampleOpts);
    log(
      `base model: val loss ${before.val.toFixed(4)} nats/token = ${
        natsToBits(before.val).toFixed(3)
      } bits/byte`,
    );
  }

  // The method, its optimizer, schedule and sampler.
  const pm = await preparePeft(model, {
    method: args.method,
    r: args.rank,
    alpha: args.alpha,
    dropout: args.dropout,
    rslora: args.rslora,
    targets,
    quant: args.quant,
    adapterSize: args.rank,
    layers: args.layers ?? undefined,
    seed: args.seed,
  });
  const counts = pm.counts();
  log(countsSummary(args, counts));
  for (const [name, t] of pm.trainable) {
    if (!t.chunks) continue;
    log(
      `${name} [${t.shape.join(", ")}] (${(t.bytes / 1e6).toFixed(1)} MB) is over the largest ` +
        `buffer of ${dev.description}: stored and trained in ${t.chunks.length} row chunks`,
    );
  }
  // Recompute each block in the backward pass (rewinding dropout) instead of keeping activations.
  if (ck.on) model.gradCheckpointing = { rngs: [pm.dropoutRng] };
  const opt = new AdamW(pm.trainable, {
    lr: args.lr,
    betas: [0.9, 0.999],
    weightDecay: args.method === "full" ? 0.01 : 0,
  });
  const schedule = cosineSchedule({
    maxLr: args.lr,
    minLr: args.lr / 10,
    warmup: Math.min(30, Math.floor(args.steps / 10)),
    total: args.steps,
  });
  const sampler = instruct
    ? new ExampleSampler(instruct.train, {
      batchSize: B,
      seqLen: T,
      seed: args.seed,
      pack: args.pack,
    })
    : new BatchSampler(data.train, { batchSize: B, seqLen: T, seed: args.seed });

  // A new run or a restored one, the loop, the finish.
  const start = await startRun({
    args,
    dev,
    pm,
    opt,
    sampler,
    data,
    hash,
    baseSha,
    counts,
    before,
    log,
  });
  const r = await runLoop({
    args,
    dev,
    model,
    pm,
    opt,
    schedule,
    sampler,
    validate,
    start,
    hash,
    countTargets: instruct !== null,
    t0,
    log,
    stopAfter: hooks.stopAfter,
  });
  const result = {
    runDir: args.out,
    step: r.step,
    losses: r.losses,
    valBefore: start.valBefore,
    valAfter: r.valAfter,
    interrupted: r.interrupted,
  };
  await recordMemory(args.out, {
    peakRssBytes: r.peakRssBytes,
    peakDeviceBytes: dev.deviceMemory?.().peak ?? null,
    gradCheckpoint: args.gradCheckpoint === true,
  });
  if (r.interrupted) return result;
  await finishRun({
    args,
    dev,
    model,
    pm,
    tok,
    prompts,
    sampleOpts,
    samplesBefore: start.samplesBefore,
    valBefore: start.valBefore,
    valAfter: r.valAfter,
    counts,
    instruct,
    tally: start.tally,
    peakRssBytes: r.peakRssBytes,
    peakDeviceBytes: dev.deviceMemory?.().peak ?? null,
    t0,
    log,
  });
  return result;
}

/** The log line about trainable parameters and the base weights' storage. */
function countsSummary(args: TrainArgs, counts: ParamCounts): string {
  const fmt = (n: number) => n.toLocaleString("en-US");
  return `${args.method}: ${fmt(counts.trainable)} trainable of ${fmt(counts.total)} parameters (${
    ((100 * counts.trainable) / counts.total).toFixed(2)
  }%); base linear weights ${(counts.baseLinearBytesF32 / 1e6).toFixed(2)} MB as f32 → ${
    (counts.baseLinearBytes / 1e6).toFixed(2)
  } MB as ${args.quant === "none" ? "f32" : args.quant}`;
}

/** Parameters of `model`, its quantized linears (loaded as stored) included. */
function parameterCount(model: CausalLM): number {
  let n = model.numParameters;
  for (const l of model.linears().values()) {
    if (l instanceof QuantLinear) n += l.inFeatures * l.outFeatures;
  }
  return n;
}
