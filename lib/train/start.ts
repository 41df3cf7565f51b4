/**
 * Opening a run's state: a new run makes its folder, run.json and metrics.jsonl; a resumed one
 * restores the trainable tensors, the optimizer, the sampler and the dropout RNG from its
 * checkpoint and continues metrics.jsonl after the checkpoint's step.
 *
 * @module
 */

import { setAttentionChoices } from "../ops/attention_select.ts";
import type { Backend } from "../backend/backend.ts";
import type { Batch, BatchSamplerState } from "../data/batch.ts";
import { sha256Hex } from "../data/hash.ts";
import type { AdamW } from "../optim/optimizers.ts";
import type { ParamCounts, PeftModel } from "../peft/apply.ts";
import type { TrainArgs } from "./args.ts";
import { hasCheckpoint, loadCheckpoint } from "./checkpoint.ts";
import { InputError } from "./input_error.ts";
import { MetricsWriter } from "./metrics.ts";
import { buildRunManifest, prepareRunDir, recordResume, writeRunJson } from "./run_dir.ts";
import { instructManifest, type RunData } from "./setup.ts";

/** A training batch sampler whose position a checkpoint saves. */
export interface Sampler {
  /** The next batch. */
  next(): Batch;
  /** Its position. */
  getState(): BatchSamplerState;
  /** Continues from a saved position. */
  setState(state: BatchSamplerState): void;
}

/** What the training loop starts from. */
export interface RunStart {
  /** Steps already done (0 for a new run). */
  step: number;
  /** metrics.jsonl, open for appending. */
  metrics: MetricsWriter;
  /** Validation loss of the base model (from the checkpoint on resume). */
  valBefore: number;
  /** Samples of the base model (from the checkpoint on resume). */
  samplesBefore: string[];
  /** Targets trained and masked so far. */
  tally: { trained: number; masked: number };
  /**
   * Resumed runs whose checkpoint recorded the attention paths (`attention_select.ts`): they are
   * applied on the backend already, and the run does not tune attention again (the paths differ
   * in rounding, so the resumed steps run exactly as the uninterrupted run's would).
   */
  attentionPaths?: Record<string, string>;
}

/** Everything {@link startRun} reads. */
export interface StartInput {
  /** The run's settings. */
  args: TrainArgs;
  /** The backend, for run.json. */
  dev: Backend;
  /** The prepared model. */
  pm: PeftModel;
  /** Its optimizer. */
  opt: AdamW;
  /** The training sampler. */
  sampler: Sampler;
  /** The data. */
  data: RunData;
  /** Config hash of the run (settings, base and data digests). */
  hash: string;
  /** SHA-256 of the base model's weights. */
  baseSha: string;
  /** Parameter counts, for run.json. */
  counts: ParamCounts;
  /** Validation loss and samples of the base model (new runs). */
  before: { val: number; samples: string[] };
  /** Progress lines. */
  log: (s: string) => void;
}

/** Opens a new run or restores a resumed one (see the module docs). */
export async function startRun(i: StartInput): Promise<RunStart> {
  const { args, dev, pm, data } = i;
  const runDir = args.out;
  const tally = { trained: 0, masked: 0 };
  if (args.resume) {
    if (!(await hasCheckpoint(runDir))) {
      throw new InputError(`--resume ${runDir}: the run has no checkpoint`);
    }
    const ck = await loadCheckpoint(runDir, {
      configHash: i.hash,
      trainable: new Map([...pm.trainable].map(([n, t]) => [n, t.shape])),
      optimizerKind: "adamw",
    });
    for (const [n, h] of ck.trainable) pm.trainable.get(n)!.assign(h.data);
    i.opt.setState(ck.optimizer);
    i.sampler.setState(ck.sampler);
    pm.dropoutRng.setState(ck.dropoutRng);
    Object.assign(tally, ck.extra?.targets ?? {});
    const attentionPaths = ck.extra?.attentionPaths as Record<string, string> | undefined;
    if (attentionPaths) {
      const bad = setAttentionChoices(dev, attentionPaths);
      const all = Object.entries(attentionPaths).map(([k, v]) => `${k} ${v}`).join(", ");
      if (all) i.log(`attention paths from the checkpoint: ${all}`);
      if (bad.length) {
        i.log(
          `warning: this backend cannot run the checkpoint's attention path for ${
            bad.join(", ")
          }; the default runs instead (losses may differ slightly from the uninterrupted run)`,
        );
      }
    }
    const metrics = await MetricsWriter.resume(`${runDir}/metrics.jsonl`, ck.step);
    await recordResume(runDir, { step: ck.step, backend: `${dev.kind} (${dev.description})` });
    i.log(`resumed ${runDir} at step ${ck.step}`);
    return {
      step: ck.step,
      metrics,
      valBefore: (ck.extra?.valBefore as number) ?? NaN,
      samplesBefore: (ck.extra?.samplesBefore as string[]) ?? [],
      tally,
      ...(attentionPaths ? { attentionPaths } : {}),
    };
  }
  await prepareRunDir(runDir);
  await writeRunJson(
    runDir,
    await buildRunManifest({
      argv: [...Deno.args],
      config: args as unknown as Record<string, unknown>,
      configHash: i.hash,
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
        base: { dir: args.base, modelSha256: i.baseSha },
        trainTokensSha256: await sha256Hex(new Uint8Array(data.train.buffer)),
        valTokensSha256: await sha256Hex(new Uint8Array(data.val.buffer)),
        format: data.source.format,
        ...(data.instruct ? { instruct: instructManifest(args, data.instruct) } : {}),
      },
      extra: { counts: i.counts, valBefore: i.before.val },
    }),
  );
  const metrics = await MetricsWriter.create(`${runDir}/metrics.jsonl`);
  await metrics.append({ step: 0, val_loss: i.before.val, lr: 0, time_s: 0 });
  return { step: 0, metrics, valBefore: i.before.val, samplesBefore: i.before.samples, tally };
}
