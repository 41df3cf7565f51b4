/**
 * The fine-tuning run behind `deno task train`: load the base model, hold out validation units,
 * prepare the method, train with progress, checkpoints and exact resume, and write the run folder
 * (PEFT adapter files, metrics.jsonl, run.json, samples.txt, report.html).
 *
 * @module
 */

import { Tape } from "../autograd/tape.ts";
import type { Backend } from "../backend/backend.ts";
import { getDevice } from "../backend/device.ts";
import { WebGpuBackend } from "../backend/webgpu/webgpu_backend.ts";
import { BatchSampler, encodeDocuments } from "../data/batch.ts";
import { type ChatFormat, loadChatFormat } from "../data/chat_template.ts";
import { countTargets, evalExampleBatches, ExampleSampler } from "../data/example_batch.ts";
import {
  countExampleTargets,
  type EncodedExample,
  encodeExamples,
  type TargetCounts,
} from "../data/examples.ts";
import type { JsonlFormat } from "../data/instruct.ts";
import { sha256Hex } from "../data/hash.ts";
import { splitByUnit } from "../data/split.ts";
import { loadTextSource, type TextSource } from "../data/text_source.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { hashModelWeights } from "../io/hf.ts";
import { loadModel } from "../io/model_files.ts";
import { serializeSafetensors, tensorFromArray } from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { readJsonChecked } from "../io/read_file.ts";
import { generate } from "../nn/generate.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { AdamW } from "../optim/optimizers.ts";
import {
  clipGradNorm,
  clipGradNormOnDevice,
  cosineSchedule,
  GradAccumulator,
} from "../optim/schedule.ts";
import { type PeftModel, preparePeft } from "../peft/apply.ts";
import { saveAdapter } from "../peft/peft_files.ts";
import { scope, Tensor } from "../tensor.ts";
import { DEFAULT_TARGETS, resumedArgs, type TrainArgs } from "./args.ts";
import { InputError } from "./input_error.ts";
import {
  type CheckpointState,
  configHash,
  hasCheckpoint,
  loadCheckpoint,
  resumeSettings,
  saveCheckpoint,
} from "./checkpoint.ts";
import { evaluate, evaluateBatches, natsToBits } from "./eval.ts";
import { type MetricsRow, MetricsWriter, readMetrics } from "./metrics.ts";
import { preflight } from "./preflight.ts";
import { Progress } from "./progress.ts";
import { type ReportTable, writeReport } from "./report.ts";
import {
  buildRunManifest,
  checkRunDir,
  prepareRunDir,
  readRunJson,
  recordResume,
  writeRunJson,
  writeSamples,
} from "./run_dir.ts";

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

/** Validation batches per evaluation: enough tokens for a stable number, bounded time. */
const EVAL_BATCHES = 24;
const PROMPTS = ["Call me Ishmael. ", "The whale ", "Captain Ahab said, "];

interface Data {
  /** Token stream (text), or the examples' ids end to end (instruction data, for digests). */
  train: Int32Array;
  val: Int32Array;
  source: TextSource;
  valSource: TextSource | null;
  valLabels: string[];
  /** Instruction data only: the encoded examples and how their targets split. */
  instruct: Instruct | null;
}

/** Encoded instruction examples of a run. */
interface Instruct {
  format: Exclude<JsonlFormat, "text">;
  chat: ChatFormat;
  train: EncodedExample[];
  val: EncodedExample[];
  /** Targets of the training examples within the context (what one epoch trains and masks). */
  trainCounts: TargetCounts;
  valCounts: TargetCounts;
}

async function loadData(args: TrainArgs, tok: Tokenizer): Promise<Data> {
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
): Promise<Instruct> {
  let chat: ChatFormat;
  try {
    chat = await loadChatFormat(args.base, tok);
  } catch (e) {
    throw new InputError(`--base ${args.base}: ${(e as Error).message}`);
  }
  const opts = { trainOnPrompt: args.trainOnPrompt };
  let all: EncodedExample[], val: EncodedExample[];
  try {
    all = encodeExamples(tok, source.examples!, chat, source.spec, opts);
    val = valSource
      ? encodeExamples(tok, valSource.examples!, chat, valSource.spec, opts)
      : valIndices!.map((i) => all[i]);
  } catch (e) {
    throw new InputError((e as Error).message);
  }
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
    format: source.format as Instruct["format"],
    chat,
    train,
    val,
    trainCounts,
    valCounts,
  };
}

/** A sample prompt: its text and token ids. */
interface SamplePrompt {
  text: string;
  ids: number[];
}

/**
 * Sample prompts: for instruction data the prompt part (everything before the first trained
 * token: rendered prompt, or conversation up to the first assistant turn) of the first three
 * validation examples; for text, three fixed openings.
 */
function samplePrompts(tok: Tokenizer, instruct: Instruct | null): SamplePrompt[] {
  if (!instruct) return PROMPTS.map((text) => ({ text, ids: tok.encode(text) }));
  return instruct.val.slice(0, 3).map((e) => {
    const ids = Array.from(e.ids.subarray(0, e.promptLength));
    return { text: tok.decode(ids), ids };
  });
}

async function samplesFrom(
  model: CausalLM,
  pm: PeftModel | null,
  tok: Tokenizer,
  seed: number,
  prompts: SamplePrompt[],
) {
  pm?.setTraining(false);
  const out: string[] = [];
  for (const [i, p] of prompts.entries()) {
    const ids = await generate(model, p.ids, {
      maxTokens: 160,
      temperature: 0.8,
      topK: 40,
      seed: seed + i,
      stopToken: tok.eotToken,
      vocabSize: tok.vocabSize,
    });
    out.push(tok.decode(ids.filter((t) => t !== tok.eotToken)));
  }
  pm?.setTraining(true);
  return out;
}

async function hostTensors(m: Map<string, Tensor>) {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [n, t] of m) {
    out.set(n, { shape: [...t.shape], data: (await t.toArray()) as Float32Array });
  }
  return out;
}

/**
 * Saves the trained weights: PEFT adapter files for LoRA methods, else trainable.safetensors
 * (from `host`, the trainable tensors already copied to the host for the checkpoint).
 */
async function saveTrained(
  runDir: string,
  pm: PeftModel,
  base: string,
  host: Map<string, { shape: number[]; data: Float32Array }>,
): Promise<void> {
  if (pm.config.method === "lora" || pm.config.method === "qlora") {
    await saveAdapter(runDir, pm, base);
    return;
  }
  const tensors = new Map();
  for (const [n, t] of host) {
    tensors.set(n, tensorFromArray("F32", t.shape, t.data));
  }
  await writeFileAtomic(
    `${runDir}/trainable.safetensors`,
    serializeSafetensors(tensors, { method: pm.config.method }),
  );
}

/** Runs (or resumes) a fine-tuning run as `args` describe. */
export async function finetune(
  args: TrainArgs,
  hooks: FinetuneHooks = {},
): Promise<FinetuneResult> {
  const log = hooks.log ?? ((s: string) => console.log(s));
  const t0 = performance.now();
  const runDir = args.resume ?? args.out;
  // A resumed run takes its settings from run.json; only --eval-every, --save-every and
  // --backend may be given again to change them.
  await checkRunDir(runDir, { resume: !!args.resume });
  if (args.resume) {
    let m;
    try {
      m = await readRunJson(args.resume);
    } catch (e) {
      throw new InputError(`--resume ${args.resume}: ${(e as Error).message}`);
    }
    args = resumedArgs(m.config as unknown as TrainArgs, args);
    log(
      `resuming with the run's settings: --eval-every ${args.evalEvery}, --save-every ${args.saveEvery}` +
        (args.backend ? `, --backend ${args.backend}` : ""),
    );
  }
  const dev = hooks.device ?? await getDevice({ backend: args.backend });
  log(`backend: ${dev.kind} (${dev.description})`);
  let loaded;
  try {
    // A Hugging Face checkpoint is quantized while it loads for LoRA/QLoRA, so its f32 weights
    // never all exist at once; a bitsandbytes 4-bit one loads its 4-bit weights as stored. (A
    // folder written by saveModel loads in f32 as it always has.)
    const lora = args.method === "lora" || args.method === "qlora";
    const hfQuant = !(await isLoralabBase(args.base)) || await isBnbBase(args.base);
    loaded = await loadModel(args.base, dev, {
      quantize: lora && hfQuant ? args.quant : "none",
    });
  } catch (e) {
    throw new InputError(`--base ${args.base} is not a model folder: ${(e as Error).message}`);
  }
  const { model, tokenizer: tok } = loaded;
  // --targets defaults to GPT-2's module names; on another architecture the default means
  // "every block linear" in that architecture's names.
  const gpt2Default = args.targets.join(",") === DEFAULT_TARGETS.join(",");
  const targets = gpt2Default && model.arch !== "gpt2"
    ? [...model.peftLayout.defaultTargets]
    : args.targets;
  preflight(args, model, dev, targets);
  const data = await loadData(args, tok);
  log(
    `data: ${args.data} (${data.source.documents.length} ${data.source.unit}s), train ${data.train.length} tokens, ` +
      `val ${data.val.length} tokens (${data.valLabels.length} held out${
        data.valLabels.length <= 4 ? ": " + data.valLabels.join("; ") : ""
      })`,
  );
  if (data.instruct) log(instructSummary(args, data.instruct));
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

  // Base model: validation loss and samples before training (skipped on resume: in run.json).
  const B = args.batch, T = args.ctx;
  const instruct = data.instruct;
  const validate = () =>
    instruct
      ? evaluateBatches(model, evalExampleBatches(instruct.val, B, T), EVAL_BATCHES)
      : evaluate(model, data.val, B, T, EVAL_BATCHES);
  const prompts = samplePrompts(tok, instruct);
  let valBefore = NaN, samplesBefore: string[] = [];
  if (!args.resume) {
    valBefore = await validate();
    samplesBefore = await samplesFrom(model, null, tok, args.seed, prompts);
    log(
      `base model: val loss ${valBefore.toFixed(4)} nats/token = ${
        natsToBits(valBefore).toFixed(3)
      } bits/byte`,
    );
  }

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
  log(
    `${args.method}: ${counts.trainable.toLocaleString("en-US")} trainable of ${
      counts.total.toLocaleString("en-US")
    } ` +
      `parameters (${
        ((100 * counts.trainable) / counts.total).toFixed(2)
      }%); base linear weights ` +
      `${(counts.baseLinearBytesF32 / 1e6).toFixed(2)} MB as f32 → ${
        (counts.baseLinearBytes / 1e6).toFixed(2)
      } MB as ${args.quant === "none" ? "f32" : args.quant}`,
  );
  const opt = new AdamW(pm.trainable, {
    lr: args.lr,
    betas: [0.9, 0.999],
    weightDecay: args.method === "full" ? 0.01 : 0,
  });
  const warmup = Math.min(30, Math.floor(args.steps / 10));
  const schedule = cosineSchedule({
    maxLr: args.lr,
    minLr: args.lr / 10,
    warmup,
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
  // Targets the steps have trained on and masked (padding included), over the whole run.
  const tally = { trained: 0, masked: 0 };

  let step = 0;
  let metrics: MetricsWriter;
  if (args.resume) {
    if (!(await hasCheckpoint(runDir))) {
      throw new InputError(`--resume ${runDir}: the run has no checkpoint`);
    }
    const ck = await loadCheckpoint(runDir, {
      configHash: hash,
      trainable: new Map([...pm.trainable].map(([n, t]) => [n, t.shape])),
      optimizerKind: "adamw",
    });
    for (const [n, h] of ck.trainable) pm.trainable.get(n)!.assign(h.data);
    opt.setState(ck.optimizer);
    sampler.setState(ck.sampler);
    pm.dropoutRng.setState(ck.dropoutRng);
    step = ck.step;
    Object.assign(tally, ck.extra?.targets ?? {});
    valBefore = (ck.extra?.valBefore as number) ?? NaN;
    samplesBefore = (ck.extra?.samplesBefore as string[]) ?? [];
    metrics = await MetricsWriter.resume(`${runDir}/metrics.jsonl`, step);
    await recordResume(runDir, { step, backend: `${dev.kind} (${dev.description})` });
    log(`resumed ${runDir} at step ${step}`);
  } else {
    await prepareRunDir(runDir);
    await writeRunJson(
      runDir,
      await buildRunManifest({
        argv: [...Deno.args],
        config: args as unknown as Record<string, unknown>,
        configHash: hash,
        backend: `${dev.kind} (${dev.description})`,
        data: {
          train: {
            spec: data.source.spec,
            origin: data.source.origin,
            sha256: data.source.sha256,
            fileSha256: data.source.fileSha256 ?? null,
          },
          val: data.valSource
            ? { spec: data.valSource.spec, sha256: data.valSource.sha256 }
            : { heldOut: data.valLabels, valFraction: 0.1 },
          base: { dir: args.base, modelSha256: baseSha },
          trainTokensSha256: await sha256Hex(new Uint8Array(data.train.buffer)),
          valTokensSha256: await sha256Hex(new Uint8Array(data.val.buffer)),
          format: data.source.format,
          ...(instruct ? { instruct: instructManifest(args, instruct) } : {}),
        },
        extra: { counts, valBefore },
      }),
    );
    metrics = await MetricsWriter.create(`${runDir}/metrics.jsonl`);
    await metrics.append({ step: 0, val_loss: valBefore, lr: 0, time_s: 0 });
  }

  const checkpoint = async () => {
    const trainable = await hostTensors(pm.trainable);
    const state: CheckpointState = {
      step,
      trainable,
      optimizer: await opt.getState(),
      sampler: sampler.getState(),
      dropoutRng: pm.dropoutRng.getState(),
      configHash: hash,
      args,
      extra: { valBefore, samplesBefore, targets: { ...tally } },
    };
    await saveCheckpoint(runDir, state);
    await saveTrained(runDir, pm, args.base, trainable);
  };

  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  try {
    Deno.addSignalListener("SIGINT", onSigint);
  } catch { /* signals unavailable (e.g. in some embeddings): Ctrl-C just kills the run */ }

  const oneWait = dev.kind !== "cpu";
  const progress = new Progress(args.steps, "train ");
  const losses: number[] = [];
  const tStart = performance.now();
  const startStep = step;
  let valAfter = NaN;
  try {
    while (step < args.steps) {
      const lr = schedule(step);
      const acc = new GradAccumulator();
      // On a GPU the step waits once: losses stay on the device, clipping happens in the
      // optimizer kernels, and loss and gradient norm come back together at the end. The CPU
      // reads each loss and the norm as it goes (no round trip to save; same numerics as ever).
      const lossesOnDevice: Tensor[] = [];
      let lossSum = 0;
      for (let k = 0; k < args.gradAccum; k++) {
        const batch = sampler.next();
        // Token windows count every target (the unmasked loss, as ever); instruction batches
        // mask prompts and padding (-100) out of the mean.
        const count = countTargets(batch.y);
        tally.trained += count;
        tally.masked += batch.y.length - count;
        const l = await scope(async () => {
          const x = Tensor.fromArray(batch.x, [B, T], { device: dev, dtype: "i32" });
          const y = Tensor.fromArray(batch.y, [B, T], { device: dev, dtype: "i32" });
          const tape = new Tape();
          tape.watch(...pm.trainable.values());
          const loss = tape.run(() => model.loss(x, y, { count }));
          const grads = tape.backward(loss);
          for (const g of grads.values()) g.keep();
          acc.add(grads);
          return oneWait ? loss : await loss.item();
        });
        if (typeof l === "number") lossSum += l;
        else lossesOnDevice.push(l);
      }
      const diverged = (loss: number) =>
        new Error(
          `loss is ${loss} at step ${
            step + 1
          }; stopped. The last good checkpoint in ${runDir} is kept ` +
            `(try a lower --lr)`,
        );
      if (!oneWait && !Number.isFinite(lossSum)) throw diverged(lossSum / args.gradAccum);
      lossSum = await scope(async () => {
        const grads = acc.take();
        pm.maskGrads(grads);
        if (!oneWait) {
          await clipGradNorm(grads, 1.0);
          opt.update(grads, lr);
          return lossSum;
        }
        const clip = clipGradNormOnDevice(grads, 1.0);
        opt.update(grads, lr, clip);
        const [ls, [norm]] = await Promise.all([
          Promise.all(lossesOnDevice.map((t) => t.item())),
          clip.toArray(),
        ]);
        for (const t of lossesOnDevice) t.dispose();
        const s = ls.reduce((a, b) => a + b, 0);
        // The update has run, but only in memory: nothing is saved after a divergence.
        if (!Number.isFinite(s) || !Number.isFinite(norm)) throw diverged(s / args.gradAccum);
        return s;
      });
      const loss = lossSum / args.gradAccum;
      step++;
      if (step === startStep + 1 && dev instanceof WebGpuBackend && !dev.engine.isSoftware) {
        // Time each matmul variant on the products the first step made, once per run. The
        // variants give bit-identical results, so this changes speed only, never the numbers.
        const t = performance.now();
        const tuned = await dev.tuneMatmul(dev.seenMatmulShapes());
        log(
          `tuned the matmul kernels on ${tuned.length} product shapes in ${
            ((performance.now() - t) / 1000).toFixed(1)
          } s`,
        );
      }
      losses.push(loss);
      const elapsed = (performance.now() - tStart) / 1000;
      const tps = ((step - startStep) * B * T * args.gradAccum) / elapsed;
      const row: MetricsRow = {
        step,
        loss,
        lr,
        tokens_per_s: tps,
        time_s: (performance.now() - t0) / 1000,
        ...(instruct ? { targets_trained: tally.trained, targets_masked: tally.masked } : {}),
      };
      const evalNow = (args.evalEvery > 0 && step % args.evalEvery === 0) || step === args.steps;
      if (evalNow) {
        pm.setTraining(false);
        row.val_loss = await validate();
        pm.setTraining(true);
        if (step === args.steps) valAfter = row.val_loss;
      }
      await metrics.append(row);
      progress.update(step, {
        loss,
        ...(row.val_loss !== undefined ? { val: row.val_loss } : {}),
        "tok/s": Math.round(tps),
      }, evalNow);
      const stopping = interrupted ||
        (hooks.stopAfter !== undefined && step - startStep >= hooks.stopAfter);
      if ((args.saveEvery > 0 && step % args.saveEvery === 0) || step === args.steps || stopping) {
        await checkpoint();
      }
      if (stopping) {
        interrupted = true;
        log(
          `stopped at step ${step}; checkpoint saved. Continue with: deno task train --resume ${runDir}`,
        );
        break;
      }
    }
  } finally {
    metrics.close();
    try {
      Deno.removeSignalListener("SIGINT", onSigint);
    } catch { /* see above */ }
  }
  if (interrupted) return { runDir, step, losses, valBefore, valAfter: NaN, interrupted };

  const samplesAfter = await samplesFrom(model, pm, tok, args.seed, prompts);
  await writeSamples(
    runDir,
    prompts.map((q) => q.text).flatMap((p, i) => [
      {
        title: `before (base model), prompt ${JSON.stringify(p)}`,
        prompt: p,
        text: samplesBefore[i] ?? "",
      },
      {
        title: `after (${args.method}), prompt ${JSON.stringify(p)}`,
        prompt: p,
        text: samplesAfter[i],
      },
    ]),
  );
  await writeReport(runDir, {
    title: runDir.split("/").pop() ?? runDir,
    subtitle:
      `${args.method} on ${args.data}, base ${args.base}, ${args.steps} steps, ${dev.kind} (${dev.description})`,
    metrics: await readMetrics(`${runDir}/metrics.jsonl`),
    beforeAfter: [
      { metric: "validation loss (nats/token)", before: round(valBefore), after: round(valAfter) },
      {
        metric: "validation bits/byte",
        before: round(natsToBits(valBefore)),
        after: round(natsToBits(valAfter)),
      },
    ],
    samples: prompts.map((q) => q.text).map((p, i) => ({
      prompt: p,
      before: samplesBefore[i] ?? "",
      after: samplesAfter[i],
    })),
    config: Object.fromEntries(
      Object.entries(args).filter(([, v]) =>
        v === null || ["string", "number", "boolean"].includes(typeof v)
      ),
    ) as Record<string, string | number | boolean | null>,
    params: {
      trainable: counts.trainable,
      frozen: counts.frozen,
      baseBytesF32: counts.baseLinearBytesF32,
      baseBytesStored: counts.baseLinearBytes,
      storedFormat: args.quant === "none" ? "f32" : args.quant,
      optimizerBytes: counts.optimizerBytes,
    },
    ...(instruct ? { tables: [instructTable(args, instruct, tally)] } : {}),
  });
  const p0 = prompts[0]?.text ?? "";
  log(`sample before (base model): ${JSON.stringify(p0 + (samplesBefore[0] ?? ""))}`);
  log(`sample after (${args.method}): ${JSON.stringify(p0 + (samplesAfter[0] ?? ""))}`);
  if (instruct) {
    log(
      `targets: trained on ${tally.trained.toLocaleString("en-US")}, masked ${
        tally.masked.toLocaleString("en-US")
      } (prompts and padding) over ${args.steps} steps`,
    );
  }
  log(
    `validation loss ${valBefore.toFixed(4)} → ${valAfter.toFixed(4)} nats/token ` +
      `(${natsToBits(valBefore).toFixed(3)} → ${natsToBits(valAfter).toFixed(3)} bits/byte); ` +
      `${((performance.now() - t0) / 1000).toFixed(0)} s; wrote ${runDir}/`,
  );
  return { runDir, step, losses, valBefore, valAfter, interrupted };
}

/** One log line about instruction data: format, template, targets, cuts. */
function instructSummary(args: TrainArgs, ins: Instruct): string {
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
function instructManifest(args: TrainArgs, ins: Instruct): Record<string, unknown> {
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

/** The report's table of trained and masked targets. */
function instructTable(
  args: TrainArgs,
  ins: Instruct,
  steps: { trained: number; masked: number },
): ReportTable {
  const c = ins.trainCounts, v = ins.valCounts;
  return {
    title: `Instruction data (${ins.format})`,
    columns: ["", "examples", "targets trained", "targets masked", "cut at context"],
    rows: [
      ["training set (one epoch)", ins.train.length, c.trained, c.masked, c.truncated],
      ["validation set", ins.val.length, v.trained, v.masked, v.truncated],
      ["seen by the training steps", null, steps.trained, steps.masked, null],
    ],
    note:
      `Loss on ${
        args.trainOnPrompt
          ? "every token (--train-on-prompt)"
          : "completions and assistant turns only"
      }; ` +
      `chat format: ${ins.chat.origin}; ${
        args.pack ? "examples packed into rows" : "one example per row"
      }. ` +
      "Masked targets of the steps include padding.",
  };
}

/** A folder written by saveModel (loralab's own tokenizer.json), not a Hugging Face checkpoint. */
async function isBnbBase(dir: string): Promise<boolean> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/config.json`))?.quantization_config != null;
  } catch {
    return false;
  }
}

async function isLoralabBase(dir: string): Promise<boolean> {
  try {
    const tok = await readJsonChecked(`${dir}/tokenizer.json`) as { type?: unknown } | null;
    return typeof tok?.type === "string";
  } catch {
    return false;
  }
}

function round(x: number): number {
  return Math.round(x * 10000) / 10000;
}
