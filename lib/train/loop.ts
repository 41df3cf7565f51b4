/**
 * The training loop of a fine-tuning run: the learning-rate schedule, one {@link trainStep} per
 * step, metrics.jsonl, validation and checkpoint cadence, Ctrl-C (checkpoint, then stop), and
 * kernel tuning after the first step where the backend offers it.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { serializeSafetensors, tensorFromArray } from "../io/safetensors.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import type { AdamW } from "../optim/optimizers.ts";
import { saveAdapter } from "../peft/peft_files.ts";
import type { PeftModel } from "../peft/apply.ts";
import type { Tensor } from "../tensor.ts";
import type { TrainArgs } from "./args.ts";
import { type CheckpointState, saveCheckpoint } from "./checkpoint.ts";
import type { MetricsRow } from "./metrics.ts";
import { attentionChoices } from "../ops/attention_select.ts";
import { formatAttentionTuning, tuneAttention } from "../ops/attention_tune.ts";
import { Progress } from "./progress.ts";
import type { RunStart, Sampler } from "./start.ts";
import { DivergedError, trainStep } from "./step.ts";

/** Everything {@link runLoop} works with. */
export interface LoopInput {
  /** The run's settings (steps, batch, cadences, ...). */
  args: TrainArgs;
  /** The backend. */
  dev: Backend;
  /** The model (with its method applied). */
  model: CausalLM;
  /** The prepared model: trainable tensors, gradient mask, dropout. */
  pm: PeftModel;
  /** The optimizer over `pm.trainable`. */
  opt: AdamW;
  /** Learning rate of step `i` (0-based). */
  schedule: (step: number) => number;
  /** The training sampler. */
  sampler: Sampler;
  /** Validation loss of the current weights. */
  validate: () => Promise<number>;
  /** Where the run starts (from startRun). */
  start: RunStart;
  /** Config hash, saved in checkpoints. */
  hash: string;
  /** Whether metrics rows carry the trained/masked target counts (instruction data). */
  countTargets: boolean;
  /** When the run started (performance.now()), for time_s. */
  t0: number;
  /** Progress lines. */
  log: (s: string) => void;
  /** Stop (as if interrupted) after this many steps of this process. */
  stopAfter?: number;
}

/** What {@link runLoop} did. */
export interface LoopResult {
  /** Steps completed in all. */
  step: number;
  /** Training loss of each step of this process. */
  losses: number[];
  /** Validation loss after the last step, NaN if stopped early. */
  valAfter: number;
  /** Whether the run was interrupted (Ctrl-C or stopAfter) and checkpointed. */
  interrupted: boolean;
  /** Largest resident set size of the process seen after a step (bytes). */
  peakRssBytes: number;
}

/** Runs the steps from `start.step` to `args.steps` (see the module docs). */
export async function runLoop(i: LoopInput): Promise<LoopResult> {
  const { args, pm, start } = i;
  const runDir = args.out, B = args.batch, T = args.ctx;
  const { metrics, tally } = start;
  let step = start.step;

  const checkpoint = async () => {
    const trainable = await hostTensors(pm.trainable);
    const state: CheckpointState = {
      step,
      trainable,
      optimizer: await i.opt.getState(),
      sampler: i.sampler.getState(),
      dropoutRng: pm.dropoutRng.getState(),
      configHash: i.hash,
      args,
      extra: {
        valBefore: start.valBefore,
        samplesBefore: start.samplesBefore,
        targets: { ...tally },
        attentionPaths: attentionChoices(i.dev),
      },
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

  const progress = new Progress(args.steps, "train ");
  const losses: number[] = [];
  const tStart = performance.now();
  const startStep = step;
  let valAfter = NaN, peakRssBytes = Deno.memoryUsage().rss;
  try {
    while (step < args.steps) {
      const lr = i.schedule(step);
      const batches = Array.from({ length: args.gradAccum }, () => i.sampler.next());
      let r;
      try {
        r = await trainStep(i.model, pm.trainable.values(), i.opt, batches, {
          lr,
          maxNorm: 1.0,
          mask: (g) => pm.maskGrads(g),
        });
      } catch (e) {
        if (!(e instanceof DivergedError)) throw e;
        // The update may have run, but only in memory: nothing is saved after a divergence.
        throw new Error(
          `loss is ${e.loss} at step ${step + 1}; stopped. The last good checkpoint in ` +
            `${runDir} is kept (try a lower --lr)`,
        );
      }
      peakRssBytes = Math.max(peakRssBytes, Deno.memoryUsage().rss);
      tally.trained += r.trained;
      tally.masked += r.masked;
      const loss = r.loss;
      step++;
      if (step === startStep + 1 && i.dev.tuneSeenShapes) {
        // Time each matmul variant on the products the first step made, once per run. The
        // variants give bit-identical results, so this changes speed only, never the numbers.
        const t = performance.now();
        const tuned = await i.dev.tuneSeenShapes();
        if (tuned !== null) {
          i.log(
            `tuned the matmul kernels on ${tuned} product shapes in ${
              ((performance.now() - t) / 1000).toFixed(1)
            } s`,
          );
        }
      }
      if (step === startStep + 1 && !start.attentionPaths) {
        // Time the attention paths of the shapes the first step ran, once per run (hardware
        // GPUs only). They differ in rounding: the choices go into every checkpoint, and a
        // resumed run applies them instead of tuning (see start.ts).
        const t = performance.now();
        const tuned = await tuneAttention(i.dev);
        if (tuned.length) {
          i.log(
            `tuned attention on ${tuned.length} shapes in ${
              ((performance.now() - t) / 1000).toFixed(1)
            } s: ${formatAttentionTuning(tuned).join("; ")}`,
          );
        }
      }
      losses.push(loss);
      const elapsed = (performance.now() - tStart) / 1000;
      const tps = ((step - startStep) * B * T * args.gradAccum) / elapsed;
      const row: MetricsRow = {
        step,
        loss,
        lr,
        tokens_per_s: tps,
        time_s: (performance.now() - i.t0) / 1000,
        ...(i.countTargets ? { targets_trained: tally.trained, targets_masked: tally.masked } : {}),
      };
      const evalNow = (args.evalEvery > 0 && step % args.evalEvery === 0) || step === args.steps;
      if (evalNow) {
        pm.setTraining(false);
        row.val_loss = await i.validate();
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
        (i.stopAfter !== undefined && step - startStep >= i.stopAfter);
      if ((args.saveEvery > 0 && step % args.saveEvery === 0) || step === args.steps || stopping) {
        await checkpoint();
      }
      if (stopping) {
        interrupted = true;
        i.log(
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
  return { step, losses, valAfter: interrupted ? NaN : valAfter, interrupted, peakRssBytes };
}

/** The tensors of `m` copied to the host. */
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
