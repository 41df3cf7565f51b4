/**
 * The end of a fine-tuning run: samples after training, samples.txt, report.html and the closing
 * log lines (samples before and after, targets, validation loss before and after).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import type { ParamCounts, PeftModel } from "../peft/apply.ts";
import type { TrainArgs } from "./args.ts";
import { natsToBits } from "./eval.ts";
import { readMetrics } from "./metrics.ts";
import { type ReportTable, writeReport } from "./report.ts";
import { writeSamples } from "./run_dir.ts";
import { type SampleOptions, type SamplePrompt, samplesFrom } from "./samples.ts";
import type { InstructData } from "./setup.ts";

/** Everything {@link finishRun} writes about. */
export interface FinishInput {
  /** The run's settings. */
  args: TrainArgs;
  /** The backend, for the report. */
  dev: Backend;
  /** The trained model. */
  model: CausalLM;
  /** The prepared model (dropout off while sampling). */
  pm: PeftModel;
  /** The tokenizer. */
  tok: Tokenizer;
  /** The sample prompts. */
  prompts: readonly SamplePrompt[];
  /** How samples are drawn. */
  sampleOpts: SampleOptions;
  /** Samples of the base model. */
  samplesBefore: string[];
  /** Validation loss before and after (nats/token). */
  valBefore: number;
  /** Validation loss after the last step. */
  valAfter: number;
  /** Parameter counts. */
  counts: ParamCounts;
  /** Instruction data, or null for text. */
  instruct: InstructData | null;
  /** Targets trained and masked over the run. */
  tally: { trained: number; masked: number };
  /** Peak resident set size of this process (bytes). */
  peakRssBytes: number;
  /** Peak device memory (bytes), or null on the CPU. */
  peakDeviceBytes: number | null;
  /** When the run started (performance.now()). */
  t0: number;
  /** Progress lines. */
  log: (s: string) => void;
}

/** Writes samples.txt and report.html and logs the run's summary (see the module docs). */
export async function finishRun(i: FinishInput): Promise<void> {
  const { args, prompts, samplesBefore, valBefore, valAfter, counts, instruct } = i;
  const runDir = args.out;
  const samplesAfter = await samplesFrom(i.model, i.pm, i.tok, prompts, i.sampleOpts);
  await writeSamples(
    runDir,
    prompts.map((q) => q.text).flatMap((p, k) => [
      {
        title: `before (base model), prompt ${JSON.stringify(p)}`,
        prompt: p,
        text: samplesBefore[k] ?? "",
      },
      {
        title: `after (${args.method}), prompt ${JSON.stringify(p)}`,
        prompt: p,
        text: samplesAfter[k],
      },
    ]),
  );
  await writeReport(runDir, {
    title: runDir.split("/").pop() ?? runDir,
    subtitle:
      `${args.method} on ${args.data}, base ${args.base}, ${args.steps} steps, ${i.dev.kind} (${i.dev.description})`,
    metrics: await readMetrics(`${runDir}/metrics.jsonl`),
    beforeAfter: [
      { metric: "validation loss (nats/token)", before: round(valBefore), after: round(valAfter) },
      {
        metric: "validation bits/byte",
        before: round(natsToBits(valBefore)),
        after: round(natsToBits(valAfter)),
      },
    ],
    samples: prompts.map((q) => q.text).map((p, k) => ({
      prompt: p,
      before: samplesBefore[k] ?? "",
      after: samplesAfter[k],
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
      peakRssBytes: i.peakRssBytes,
      ...(i.peakDeviceBytes !== null ? { peakDeviceBytes: i.peakDeviceBytes } : {}),
      gradCheckpoint: args.gradCheckpoint === true,
    },
    ...(instruct ? { tables: [instructTable(args, instruct, i.tally)] } : {}),
  });
  if (prompts.length > 0) {
    const p0 = prompts[0].text;
    i.log(`sample before (base model): ${JSON.stringify(p0 + (samplesBefore[0] ?? ""))}`);
    i.log(`sample after (${args.method}): ${JSON.stringify(p0 + (samplesAfter[0] ?? ""))}`);
  }
  if (instruct) {
    i.log(
      `targets: trained on ${i.tally.trained.toLocaleString("en-US")}, masked ${
        i.tally.masked.toLocaleString("en-US")
      } (prompts and padding) over ${args.steps} steps`,
    );
  }
  i.log(
    `validation loss ${valBefore.toFixed(4)} → ${valAfter.toFixed(4)} nats/token ` +
      `(${natsToBits(valBefore).toFixed(3)} → ${natsToBits(valAfter).toFixed(3)} bits/byte); ` +
      `${((performance.now() - i.t0) / 1000).toFixed(0)} s; wrote ${runDir}/`,
  );
}

/** The report's table of trained and masked targets. */
function instructTable(
  args: TrainArgs,
  ins: InstructData,
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

function round(x: number): number {
  return Math.round(x * 10000) / 10000;
}
