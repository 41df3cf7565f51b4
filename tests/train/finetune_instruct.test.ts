/**
 * `deno task train` on instruction data (tiny GPT, byte tokenizer, CPU): the loss drops, the
 * masked/trained target counts match a hand count, a stopped run resumes bit for bit (plain and
 * packed), and chat rows go through a model folder's chat template.
 */

import assert from "node:assert/strict";
import { ByteTokenizer, cpu, GPT } from "../../lib/mod.ts";
import { saveModel } from "../../lib/io/mod.ts";
import { parseTrainArgs, type TrainArgs } from "../../lib/train/args.ts";
import { finetune } from "../../lib/train/finetune.ts";

const WORDS = ["sea", "sky", "oak", "elm", "ice", "sun", "fog", "ash", "bay", "cod"];
/** Every completion is " " + 2 letters: 3 bytes + end-of-text = 4 trained targets per example. */
const ANSWER: Record<string, string> = Object.fromEntries(
  WORDS.map((w, i) => [w, WORDS[(i + 3) % WORDS.length].slice(0, 2)]),
);

async function fixture() {
  const root = await Deno.makeTempDir();
  const base = `${root}/base`;
  const cfg = { vocab_size: 257, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 };
  await saveModel(base, GPT.init(cfg, { device: cpu, seed: 1 }), new ByteTokenizer());
  const rows: string[] = [];
  for (let k = 0; k < 40; k++) {
    const w = WORDS[k % WORDS.length];
    rows.push(JSON.stringify({ prompt: `Q: ${w}\nA:`, completion: ` ${ANSWER[w]}` }));
  }
  const data = `${root}/pc.jsonl`;
  await Deno.writeTextFile(data, rows.join("\n") + "\n");
  return { root, base, data };
}

function args(fx: { base: string; data: string }, out: string, extra: string[] = []): TrainArgs {
  const a = parseTrainArgs([
    "--method",
    "lora",
    "--lr",
    "0.01",
    "--base",
    fx.base,
    "--data",
    fx.data,
    "--out",
    out,
    "--ctx",
    "16",
    "--batch",
    "4",
    "--steps",
    "10",
    "--eval-every",
    "5",
    "--save-every",
    "4",
    "--backend",
    "cpu",
    ...extra,
  ]);
  if ("help" in a) throw new Error("unexpected help");
  return a;
}

const quiet = { log: () => {}, device: cpu };

Deno.test("train on prompt/completion rows: loss drops, targets counted, resume exact", async () => {
  const fx = await fixture();
  try {
    const full = await finetune(args(fx, `${fx.root}/a`), quiet);
    assert.equal(full.losses.length, 10);
    assert.ok(full.valAfter < full.valBefore, `val ${full.valBefore} → ${full.valAfter}`);
    const head = full.losses.slice(0, 2).reduce((a, b) => a + b) / 2;
    const tail = full.losses.slice(-2).reduce((a, b) => a + b) / 2;
    assert.ok(tail < head, `train loss ${head} → ${tail}`);

    // Hand count: "Q: www\nA:" is 9 bytes (8 masked targets after the first token); " xx" + EOT
    // are 4 trained targets. 10% of 40 rows (4) are held out.
    const run = JSON.parse(await Deno.readTextFile(`${fx.root}/a/run.json`));
    assert.equal(run.data.format, "prompt-completion");
    assert.equal(run.data.instruct.chatTemplate, "default");
    assert.equal(run.data.instruct.trainExamples, 36);
    assert.deepEqual(run.data.instruct.trainTargets, {
      trained: 36 * 4,
      masked: 36 * 8,
      truncated: 0,
      empty: 0,
    });
    // Each step: 4 rows of 16 targets, 4 trained each (one example per row, the rest padding).
    const rows = (await Deno.readTextFile(`${fx.root}/a/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    const last = rows.at(-1);
    assert.equal(last.step, 10);
    assert.equal(last.targets_trained, 10 * 4 * 4);
    assert.equal(last.targets_masked, 10 * 4 * 16 - 10 * 4 * 4);
    assert.match(await Deno.readTextFile(`${fx.root}/a/report.html`), /Instruction data/);

    // Stopped after 3 steps and resumed: the same losses, bit for bit.
    const part = await finetune(args(fx, `${fx.root}/b`), { ...quiet, stopAfter: 3 });
    assert.ok(part.interrupted);
    const rest = await finetune({ ...args(fx, `${fx.root}/x`), resume: `${fx.root}/b` }, quiet);
    assert.deepEqual([...part.losses, ...rest.losses], full.losses);
    const lastB = (await Deno.readTextFile(`${fx.root}/b/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l)).at(-1);
    assert.equal(lastB.targets_trained, last.targets_trained);

    // --pack (ctx 32: two 13-token examples per row): more targets per step, resumable exactly.
    const packed = await finetune(args(fx, `${fx.root}/p`, ["--pack", "--ctx", "32"]), quiet);
    const prow = (await Deno.readTextFile(`${fx.root}/p/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l)).at(-1);
    assert.ok(prow.targets_trained > last.targets_trained, `packed ${prow.targets_trained}`);
    const p1 = await finetune(args(fx, `${fx.root}/q`, ["--pack", "--ctx", "32"]), {
      ...quiet,
      stopAfter: 6,
    });
    const p2 = await finetune(
      { ...args(fx, `${fx.root}/y`, ["--pack", "--ctx", "32"]), resume: `${fx.root}/q` },
      quiet,
    );
    assert.deepEqual([...p1.losses, ...p2.losses], packed.losses);

    // --train-on-prompt: every target but each example's first counts.
    await finetune(args(fx, `${fx.root}/t`, ["--train-on-prompt", "--steps", "1"]), quiet);
    const tr = JSON.parse(await Deno.readTextFile(`${fx.root}/t/run.json`));
    assert.deepEqual(tr.data.instruct.trainTargets, {
      trained: 36 * 12,
      masked: 0,
      truncated: 0,
      empty: 0,
    });
  } finally {
    await Deno.remove(fx.root, { recursive: true });
  }
});

Deno.test("train on chat rows through the base folder's chat template", async () => {
  const fx = await fixture();
  try {
    // A compact template ("u:…|a:…|") that fits the tiny model's 32 positions; its eos_token
    // "</s>" is never written by it, so end-of-text is appended after each assistant turn.
    const tpl = "{% for m in messages %}{{ m['role'][0] + ':' + m['content'] + '|' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ 'a:' }}{% endif %}";
    await Deno.writeTextFile(
      `${fx.base}/tokenizer_config.json`,
      JSON.stringify({ chat_template: tpl, eos_token: "</s>" }),
    );
    const rows = WORDS.map((w) =>
      JSON.stringify({
        messages: [{ role: "user", content: w }, { role: "assistant", content: ANSWER[w] }],
      })
    );
    const data = `${fx.root}/chat.jsonl`;
    await Deno.writeTextFile(data, rows.join("\n"));
    const a = args({ ...fx, data }, `${fx.root}/c`, ["--steps", "2"]);
    const r = await finetune(a, quiet);
    assert.ok(Number.isFinite(r.valAfter));
    const run = JSON.parse(await Deno.readTextFile(`${fx.root}/c/run.json`));
    assert.equal(run.data.format, "chat");
    assert.equal(run.data.instruct.chatTemplate, `${fx.base}/tokenizer_config.json`);
    // "u:www|a:" = 8 bytes (7 masked targets), then "xx|" + EOT = 4 trained; 1 of 10 held out.
    assert.deepEqual(run.data.instruct.trainTargets, {
      trained: 9 * 4,
      masked: 9 * 7,
      truncated: 0,
      empty: 0,
    });
  } finally {
    await Deno.remove(fx.root, { recursive: true });
  }
});
