import assert from "node:assert/strict";
import { ByteTokenizer, cpu, GPT, preparePeft, saveAdapter, Tensor } from "../../lib/mod.ts";
import { loadModel, saveModel } from "../../lib/io/mod.ts";
import { mergeAdapter } from "../../lib/peft/merge.ts";
import { evaluateText } from "../../lib/train/eval_text.ts";
import { runScript } from "../harness.ts";

// `deno task eval`: --json gives the loss evaluateText computes (tested against float64 in
// tests/train/eval_text.test.ts); an adapter changes it, and the merged model gives the same
// loss as base + adapter; bad flags exit 2 with one line.
function run(args: string[]) {
  return runScript("eval.ts", ["--allow-read", "--allow-env", "--allow-ffi=/usr/lib"], [
    "--backend",
    "cpu",
    ...args,
  ]);
}

Deno.test("deno task eval: --json loss, adapter vs merged, text output, bad flags exit 2", async () => {
  const root = await Deno.makeTempDir();
  const gpt = GPT.init(
    { vocab_size: 257, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 },
    { device: cpu, seed: 4 },
  );
  await saveModel(`${root}/base`, gpt, new ByteTokenizer());
  gpt.dispose();
  const { model } = await loadModel(`${root}/base`, cpu);
  const pm = await preparePeft(model, { method: "lora", r: 2, alpha: 4 });
  for (const l of pm.loraLayers.values()) {
    l.loraB.dispose();
    l.loraB = Tensor.randn(l.loraB.shape, { device: cpu, seed: 6, std: 0.2 }).keep();
  }
  await saveAdapter(`${root}/adapter`, pm, `${root}/base`);
  model.dispose();
  await mergeAdapter(`${root}/base`, `${root}/adapter`, `${root}/merged`);
  const docs = ["The whale, the sea and the ship.", "Call me Ishmael. Some years ago…"];
  await Deno.writeTextFile(`${root}/data.txt`, docs.join("\n\n"));

  const json = async (args: string[]) => {
    const r = await run(["--data", `${root}/data.txt`, "--json", ...args]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim().split("\n").length, 1, "one JSON line on stdout");
    return JSON.parse(r.out);
  };
  const base = await json(["--base", `${root}/base`, "--ctx", "8", "--batch", "3"]);
  const { model: m2, tokenizer } = await loadModel(`${root}/base`, cpu);
  const want = await evaluateText(m2, tokenizer, docs, { ctx: 8, batch: 3 });
  m2.dispose();
  assert.deepEqual(
    [base.windows, base.tokens, base.bytes, base.ctx, base.truncated, base.backend],
    [want.windows, want.tokens, want.bytes, 8, false, "cpu"],
  );
  assert.ok(Math.abs(base.loss - want.loss) <= 1e-9, `${base.loss} vs ${want.loss}`);
  assert.ok(Math.abs(base.perplexity - Math.exp(base.loss)) <= 1e-9 * base.perplexity);
  const adapted = await json(["--base", `${root}/base`, "--adapter", `${root}/adapter`]);
  const merged = await json(["--base", `${root}/merged`]);
  console.log(
    `eval loss: base ${base.loss.toFixed(5)}, base + adapter ${adapted.loss.toFixed(5)}, ` +
      `merged ${merged.loss.toFixed(5)} (ctx ${adapted.ctx})`,
  );
  assert.equal(adapted.ctx, 16); // the model's context by default
  assert.ok(Math.abs(adapted.loss - base.loss) > 1e-3, "the adapter changes the loss");
  assert.ok(Math.abs(adapted.loss - merged.loss) <= 1e-5, "merged = base + adapter");
  const cut = await json(["--base", `${root}/base`, "--eval-tokens", "40"]);
  assert.deepEqual([cut.truncated, cut.stream_tokens, cut.windows], [true, 40, 2]);

  const text = await run([
    "--data",
    `${root}/data.txt`,
    "--base",
    `${root}/base`,
    "--eval-tokens",
    "40",
  ]);
  assert.equal(text.code, 0, text.err);
  assert.match(
    text.out,
    /the first 40 tokens \(--eval-tokens 40; --eval-tokens all for the whole data\)/,
  );
  assert.match(
    text.out,
    /loss \d+\.\d{4} nats\/token \| perplexity [\d.]+ \| [\d.]+ bits\/token \| [\d.]+ bits\/byte/,
  );
  assert.match(text.err, /eval: windows step 2\/2/); // progress on stderr

  // Instruction data: rendered as training renders it, scored on the completions only.
  const rows = [
    { prompt: "Q: 1+1?\nA:", completion: " 2." },
    { prompt: "Q: 2+3?\nA:", completion: " 5." },
    { prompt: "Name a whale:", completion: " Moby Dick." },
  ];
  await Deno.writeTextFile(`${root}/qa.jsonl`, rows.map((r) => JSON.stringify(r)).join("\n"));
  const qa = async (more: string[]) => {
    const r = await run([
      "--data",
      `${root}/qa.jsonl`,
      "--base",
      `${root}/base`,
      "--json",
      ...more,
    ]);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out);
  };
  const completions = await qa([]);
  // Targets: each completion's bytes and its end-of-text token, within ctx + 1 = 17 tokens.
  const targets = rows.reduce(
    (s, r) => s + Math.min(r.prompt.length + r.completion.length + 1, 17) - r.prompt.length,
    0,
  );
  assert.equal(targets, 12); // the third example is cut
  assert.deepEqual(
    [completions.data_format, completions.scored, completions.examples, completions.tokens],
    ["prompt-completion", "completions", 3, targets],
  );
  const all = await qa(["--include-prompt"]);
  assert.equal(all.scored, "all");
  // Every token but each example's first (cut to ctx + 1 = 17 tokens).
  assert.equal(
    all.tokens,
    rows.reduce((s, r) => s + Math.min(r.prompt.length + r.completion.length + 1, 17) - 1, 0),
  );

  const bad = async (args: string[], re: RegExp) => {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, re);
  };
  const d = ["--data", `${root}/data.txt`, "--base", `${root}/base`];
  await bad([...d, "--bogus"], /^eval: unknown flag --bogus/);
  await bad(["--base", `${root}/base`], /^eval: --data SRC is required/);
  await bad([...d, "--ctx", "0"], /^eval: --ctx 0: expected a positive integer/);
  await bad([...d, "--eval-tokens", "lots"], /--eval-tokens lots: expected a positive integer/);
  await bad([...d, "--backend", "tpu"], /--backend tpu: expected one of cpu, webgpu, auto/);
  await bad([...d, "--ctx", "64"], /--ctx 64 exceeds the model's context length 16/);
  await bad(["--data", `${root}/none.txt`, "--base", `${root}/base`], /data file not found/);
  await bad([...d, "--adapter", `${root}/base`], /no adapter_config\.json/);
  await Deno.remove(root, { recursive: true });
});
