import assert from "node:assert/strict";
import { ByteTokenizer, cpu, GPT, setSplitBytes } from "../../lib/mod.ts";
import { loadModel, saveBnbModel, saveModel } from "../../lib/io/mod.ts";
import { parseTrainArgs, type TrainArgs } from "../../lib/train/args.ts";
import { finetune } from "../../lib/train/finetune.ts";
import { assertClose, gpu, runScript } from "../harness.ts";
import { encodeDocuments } from "../../lib/data/batch.ts";
import { splitByUnit } from "../../lib/data/split.ts";
import { loadTextSource } from "../../lib/data/text_source.ts";
import { evaluate } from "../../lib/train/eval.ts";

// A tiny base model and a small text corpus with paragraphs (units for the held-out split).
async function fixture(): Promise<{ base: string; data: string; root: string }> {
  const root = await Deno.makeTempDir();
  const base = `${root}/base`;
  const cfg = { vocab_size: 257, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 };
  await saveModel(base, GPT.init(cfg, { device: cpu, seed: 1 }), new ByteTokenizer());
  const words = [
    "the",
    "whale",
    "sea",
    "ship",
    "captain",
    "white",
    "boat",
    "harpoon",
    "deep",
    "call",
    "me",
  ];
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const paras = Array.from(
    { length: 30 },
    () => Array.from({ length: 60 }, () => words[Math.floor(rnd() * words.length)]).join(" ") + ".",
  );
  const data = `${root}/data.txt`;
  await Deno.writeTextFile(data, paras.join("\n\n"));
  return { base, data, root };
}

function args(fx: { base: string; data: string }, out: string, extra: string[] = []): TrainArgs {
  const a = parseTrainArgs([
    "--base",
    fx.base,
    "--data",
    fx.data,
    "--out",
    out,
    "--ctx",
    "32",
    "--batch",
    "4",
    "--steps",
    "8",
    "--eval-every",
    "4",
    "--save-every",
    "3",
    "--backend",
    "cpu",
    ...extra,
  ]);
  if ("help" in a) throw new Error("unexpected help");
  return a;
}

const quiet = { log: () => {}, device: cpu };

Deno.test("train: a stopped and resumed run gives the same losses bit for bit (CPU)", async () => {
  const fx = await fixture();
  const full = await finetune(args(fx, `${fx.root}/a`), quiet);
  assert.equal(full.losses.length, 8);
  assert.ok(!full.interrupted);
  const part = await finetune(args(fx, `${fx.root}/b`), { ...quiet, stopAfter: 5 });
  assert.ok(part.interrupted);
  assert.equal(part.step, 5);
  const rest = await finetune(
    { ...args(fx, `${fx.root}/ignored`), resume: `${fx.root}/b` } as TrainArgs,
    quiet,
  );
  assert.deepEqual([...part.losses, ...rest.losses], full.losses);
  const adapterA = await Deno.readFile(`${fx.root}/a/adapter_model.safetensors`);
  const adapterB = await Deno.readFile(`${fx.root}/b/adapter_model.safetensors`);
  assert.deepEqual(adapterA, adapterB);
  // metrics.jsonl of the resumed run has each step once
  const rows = (await Deno.readTextFile(`${fx.root}/b/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.deepEqual(rows.map((r) => r.step), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  const run = JSON.parse(await Deno.readTextFile(`${fx.root}/b/run.json`));
  assert.equal(run.resumes.length, 1);
  await Deno.remove(fx.root, { recursive: true });
});

Deno.test("train: --method full with wte in row chunks: the unsplit run's losses, exact resume, whole tensors saved", async () => {
  const fx = await fixture();
  const full = ["--method", "full", "--lr", "0.003"];
  const a = await finetune(args(fx, `${fx.root}/a`, full), quiet);
  // wte [257, 32] is 32.9 kB, every other parameter ≤ 16.4 kB: over 20 kB, wte alone is stored in
  // 2 row chunks (129 and 128 rows) when the base is loaded.
  const prev = setSplitBytes(20_000);
  try {
    const lines: string[] = [];
    const s = await finetune(args(fx, `${fx.root}/s`, full), {
      ...quiet,
      log: (l) => lines.push(l),
    });
    assert.ok(
      lines.some((l) => /transformer\.wte\.weight \[257, 32\] .* trained in 2 row chunks/.test(l)),
      lines.join("\n"),
    );
    // Only the rounding of the head's input gradient (summed chunk by chunk) differs: seen equal
    // losses over 8 steps; 1e-5 allowed (see tests/nn/split.test.ts).
    assertClose(s.losses, a.losses, 1e-5, "split vs unsplit losses");
    const part = await finetune(args(fx, `${fx.root}/p`, full), { ...quiet, stopAfter: 5 });
    const rest = await finetune(
      { ...args(fx, `${fx.root}/ignored`, full), resume: `${fx.root}/p` } as TrainArgs,
      quiet,
    );
    // The optimizer state is saved and restored whole, per chunk on the device: bit for bit.
    assert.deepEqual([...part.losses, ...rest.losses], s.losses);
    const saved = await Deno.readFile(`${fx.root}/s/trainable.safetensors`);
    assert.deepEqual(await Deno.readFile(`${fx.root}/p/trainable.safetensors`), saved);
    // The same file layout as the unsplit run: whole tensors under their own names.
    const header = (b: Uint8Array) => {
      const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
      const h = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
      delete h.__metadata__;
      return Object.fromEntries(
        Object.entries(h).map(([k, v]) => [k, (v as { shape: number[] }).shape]),
      );
    };
    const ha = header(await Deno.readFile(`${fx.root}/a/trainable.safetensors`));
    assert.deepEqual(header(saved), ha);
    assert.deepEqual(ha["transformer.wte.weight"], [257, 32]);
  } finally {
    setSplitBytes(prev);
  }
  await Deno.remove(fx.root, { recursive: true });
});

Deno.test("train: --resume keeps the run's --eval-every and --save-every; other settings may not change", async () => {
  const fx = await fixture();
  const dir = `${fx.root}/r`;
  const every2 = ["--eval-every", "2", "--save-every", "2"];
  await finetune(args(fx, dir, every2), { ...quiet, stopAfter: 3 });
  const resume = (extra: string[]) => {
    const a = parseTrainArgs(["--resume", dir, "--backend", "cpu", ...extra]);
    if ("help" in a) throw new Error("unexpected help");
    return a;
  };
  const lines: string[] = [];
  await finetune(resume([]), { log: (l) => lines.push(l), device: cpu, stopAfter: 2 });
  assert.ok(
    lines.includes(
      "resuming with the run's settings: --eval-every 2, --save-every 2, --backend cpu",
    ),
    lines.join("\n"),
  );
  const state = JSON.parse(await Deno.readTextFile(`${dir}/checkpoint/state.json`));
  assert.equal(state.step, 5);
  await assert.rejects(
    () => finetune(resume(["--lr", "0.1"]), quiet),
    /--lr with --resume .*: the run was started with --lr 0.002, .*drop --lr/,
  );
  // Given again, they change; a training flag given with the run's own value is accepted.
  await finetune(resume(["--eval-every", "1", "--lr", "0.002", "--ctx", "32"]), quiet);
  const rows = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.deepEqual(
    rows.filter((r) => r.val_loss !== undefined).map((r) => r.step),
    [0, 2, 4, 6, 7, 8],
  );
  await Deno.remove(fx.root, { recursive: true });
});

Deno.test("train: --eval-tokens sizes validation in tokens; --samples 0 writes none", async () => {
  const fx = await fixture();
  const r = await finetune(
    args(fx, `${fx.root}/e`, ["--eval-tokens", "64", "--samples", "0", "--steps", "2"]),
    quiet,
  );
  // The first 64 validation tokens: two windows of 32, as evaluate() scores them.
  const source = await loadTextSource(fx.data);
  const split = splitByUnit(source.documents, { valFraction: 0.1, seed: 0 });
  const { model, tokenizer } = await loadModel(fx.base, cpu);
  const val = encodeDocuments(tokenizer, split.val);
  assert.ok(val.length > 200, `${val.length} validation tokens`);
  assert.equal(r.valBefore, await evaluate(model, val.subarray(0, 65), 4, 32));
  assert.notEqual(r.valBefore, await evaluate(model, val, 4, 32));
  model.dispose();
  assert.equal((await Deno.readTextFile(`${fx.root}/e/samples.txt`)).includes("prompt"), false);
  await Deno.remove(fx.root, { recursive: true });
});

Deno.test("train: --grad-checkpoint gives the same losses bit for bit; peak memory in run.json and the report", async () => {
  const fx = await fixture();
  const plain = await finetune(args(fx, `${fx.root}/p`, ["--save-every", "0"]), quiet);
  const ck = await finetune(
    args(fx, `${fx.root}/c`, ["--save-every", "0", "--grad-checkpoint"]),
    quiet,
  );
  assert.deepEqual(ck.losses, plain.losses);
  assert.equal(ck.valAfter, plain.valAfter);
  const run = JSON.parse(await Deno.readTextFile(`${fx.root}/c/run.json`));
  assert.equal(run.config.gradCheckpoint, true);
  assert.equal(run.memory.length, 1);
  assert.ok(run.memory[0].peakRssBytes > 1e6, JSON.stringify(run.memory));
  assert.equal(run.memory[0].gradCheckpoint, true);
  const html = await Deno.readTextFile(`${fx.root}/c/report.html`);
  assert.match(html, /peak process memory \(RSS\)/);
  assert.match(html, /activations checkpointed/);
  await Deno.remove(fx.root, { recursive: true });
});

Deno.test("train on a bitsandbytes 4-bit base: its stored weights, the losses of the f32 base", async () => {
  // QLoRA quantizes the f32 base with NF4 + double quantization at block 64, exactly what
  // saveBnbModel stores: training on the saved folder (4-bit weights loaded as stored) must give
  // the same losses bit for bit.
  const fx = await fixture();
  const { model, tokenizer } = await loadModel(fx.base, cpu);
  await saveBnbModel(`${fx.root}/bnb`, model as GPT, tokenizer);
  model.dispose();
  const lines: string[] = [];
  const a = await finetune(args(fx, `${fx.root}/a`, ["--save-every", "0"]), quiet);
  const b = await finetune(
    args({ ...fx, base: `${fx.root}/bnb` }, `${fx.root}/b`, ["--save-every", "0"]),
    { log: (l) => lines.push(l), device: cpu },
  );
  assert.deepEqual(b.losses, a.losses);
  assert.ok(lines.some((l) => /as nf4/.test(l)), lines.join("\n"));
  await Deno.remove(fx.root, { recursive: true });
});

Deno.test({
  name: "train on WebGPU (clipping on the device): exact resume; losses track the CPU run",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const fx = await fixture();
    const dev = await gpu();
    const onGpu = { log: () => {}, device: dev };
    const full = await finetune(args(fx, `${fx.root}/g`), onGpu);
    const part = await finetune(args(fx, `${fx.root}/h`), { ...onGpu, stopAfter: 3 });
    const rest = await finetune(
      { ...args(fx, `${fx.root}/ignored`), resume: `${fx.root}/h` } as TrainArgs,
      onGpu,
    );
    // The WGSL kernels have no atomics: the same run twice is the same bit for bit.
    assert.deepEqual([...part.losses, ...rest.losses], full.losses);
    const cpuRun = await finetune(args(fx, `${fx.root}/c`), quiet);
    // Same data, seeds and updates; only float32 summation orders differ (GPU kernels vs BLAS),
    // and clipping runs on the device. Differences grow with steps but stay ≪ the loss change.
    for (let i = 0; i < full.losses.length; i++) {
      const d = Math.abs(full.losses[i] - cpuRun.losses[i]);
      assert.ok(d < 2e-3, `step ${i + 1}: webgpu ${full.losses[i]} vs cpu ${cpuRun.losses[i]}`);
    }
    await Deno.remove(fx.root, { recursive: true });
  },
});

Deno.test({
  name: "train: --grad-accum 2 × batch 2 equals batch 4 (CPU, WebGPU); its resume is exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const fx = await fixture();
    // Without dropout the two runs see the same rows (the sampler draws rows in sequence) and the
    // same updates: the mean of two micro-batch gradients is the gradient of the batch of 4.
    const acc = ["--batch", "2", "--grad-accum", "2", "--dropout", "0"];
    const big = await finetune(args(fx, `${fx.root}/b4`, ["--dropout", "0"]), quiet);
    const two = await finetune(args(fx, `${fx.root}/a2`, acc), quiet);
    assert.equal(two.losses.length, 8);
    for (let i = 0; i < 8; i++) {
      // f32: the two micro-batch means are averaged instead of one mean over 4 rows.
      const d = Math.abs(two.losses[i] - big.losses[i]);
      assert.ok(d < 1e-4, `step ${i + 1}: grad-accum ${two.losses[i]} vs batch 4 ${big.losses[i]}`);
    }
    const part = await finetune(args(fx, `${fx.root}/p`, acc), { ...quiet, stopAfter: 5 });
    const rest = await finetune(
      { ...args(fx, `${fx.root}/ignored`, acc), resume: `${fx.root}/p` } as TrainArgs,
      quiet,
    );
    assert.deepEqual([...part.losses, ...rest.losses], two.losses);
    const dev = await gpu();
    const onGpu = await finetune(args(fx, `${fx.root}/g`, acc), { log: () => {}, device: dev });
    for (let i = 0; i < 8; i++) {
      const d = Math.abs(onGpu.losses[i] - two.losses[i]);
      assert.ok(d < 2e-3, `step ${i + 1}: webgpu ${onGpu.losses[i]} vs cpu ${two.losses[i]}`);
    }
    await Deno.remove(fx.root, { recursive: true });
  },
});

Deno.test("train: the run folder holds every promised file; validation loss drops", async () => {
  const fx = await fixture();
  const r = await finetune(args(fx, `${fx.root}/run`, ["--steps", "30", "--lr", "0.01"]), quiet);
  assert.ok(r.valAfter < r.valBefore - 0.05, `val ${r.valBefore} → ${r.valAfter}`);
  for (
    const f of [
      "adapter_config.json",
      "adapter_model.safetensors",
      "metrics.jsonl",
      "run.json",
      "samples.txt",
      "report.html",
      "plotly.min.js",
    ]
  ) {
    await Deno.stat(`${fx.root}/run/${f}`);
  }
  const run = JSON.parse(await Deno.readTextFile(`${fx.root}/run/run.json`));
  assert.match(run.data.train.sha256, /^[0-9a-f]{64}$/);
  assert.equal(run.config.method, "qlora");
  const html = await Deno.readTextFile(`${fx.root}/run/report.html`);
  assert.match(html, /<script src="plotly.min.js">/);
  assert.doesNotMatch(html, /https?:\/\/cdn/);
  await Deno.remove(fx.root, { recursive: true });
});

for (const method of ["lora", "full", "adapter", "bitfit", "freeze-lower"]) {
  Deno.test(`train: --method ${method} runs end to end and lowers the training loss`, async () => {
    const fx = await fixture();
    const r = await finetune(
      args(fx, `${fx.root}/run`, [
        "--method",
        method,
        "--steps",
        "12",
        "--lr",
        method === "full" || method === "freeze-lower" ? "0.003" : "0.01",
      ]),
      quiet,
    );
    const first = r.losses.slice(0, 3).reduce((a, b) => a + b) / 3;
    const last = r.losses.slice(-3).reduce((a, b) => a + b) / 3;
    assert.ok(last < first, `${method}: ${first} → ${last}`);
    const saved = method === "lora" ? "adapter_model.safetensors" : "trainable.safetensors";
    await Deno.stat(`${fx.root}/run/${saved}`);
    await Deno.remove(fx.root, { recursive: true });
  });
}

function cli(argv: string[], write = "--allow-write") {
  const perms = [
    "--allow-read",
    write,
    "--allow-env",
    "--allow-ffi=/usr/lib",
    "--allow-sys=systemMemoryInfo",
  ];
  return runScript("train.ts", perms, argv, { LORALAB_BACKEND: "cpu" });
}

Deno.test("train CLI: bad input is one clear line and exit code 2; NaN loss exits 1", async () => {
  const fx = await fixture();
  const common = ["--base", fx.base, "--ctx", "32", "--batch", "2", "--steps", "3"];
  let r = await cli(["--bogus"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown flag --bogus/);
  // Writing only where the process may: a clear error before any work.
  r = await cli(
    [...common, "--data", fx.data, "--out", `${fx.root}/elsewhere`],
    "--allow-write=runs",
  );
  assert.equal(r.code, 2);
  assert.match(r.err, /--out .*elsewhere: this process may not write there/);
  r = await cli([...common, "--data", `${fx.root}/nope.txt`, "--out", `${fx.root}/r1`]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--data .*nope.txt/);
  await Deno.writeTextFile(`${fx.root}/empty.txt`, "");
  r = await cli([...common, "--data", `${fx.root}/empty.txt`, "--out", `${fx.root}/r2`]);
  assert.equal(r.code, 2);
  assert.match(r.err, /empty/);
  await Deno.writeTextFile(`${fx.root}/short.txt`, "a b c\n\nd e f\n\ng h");
  r = await cli([...common, "--data", `${fx.root}/short.txt`, "--out", `${fx.root}/r3`]);
  assert.equal(r.code, 2);
  assert.match(r.err, /fewer than the context 32/);
  r = await cli([...common, "--data", fx.data, "--base", fx.root, "--out", `${fx.root}/r4`]);
  assert.equal(r.code, 2);
  assert.match(r.err, /is not a model folder/);
  // Input found bad after loading (issue 21.9): still exit 2, one line, no run folder made.
  const late: [string[], RegExp][] = [
    [["--method", "freeze-lower", "--layers", "100"], /--layers 100: the base model has 2 blocks/],
    [["--targets", "c_attn,nonsense"], /"nonsense" matches no linear layer .*c_attn, c_proj, c_fc/],
    [["--batch", "10000000"], /--batch 10000000 --ctx 32: one micro-batch needs at least/],
  ];
  for (const [flags, message] of late) {
    r = await cli([...common, "--data", fx.data, ...flags, "--out", `${fx.root}/late`]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, message);
    assert.equal(r.err.trim().split("\n").filter((l) => l.startsWith("train:")).length, 1);
    await assert.rejects(() => Deno.stat(`${fx.root}/late`), Deno.errors.NotFound);
  }
  await Deno.mkdir(`${fx.root}/taken`);
  await Deno.writeTextFile(`${fx.root}/taken/x`, "mine");
  r = await cli([...common, "--data", fx.data, "--out", `${fx.root}/taken`]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /taken exists and is not empty; choose another --out/);
  assert.doesNotMatch(r.err, /backend:/, "checked before any work");
  assert.equal(await Deno.readTextFile(`${fx.root}/taken/x`), "mine");
  r = await cli([
    ...common,
    "--data",
    fx.data,
    "--lr",
    "1e30",
    "--out",
    `${fx.root}/r5`,
    "--steps",
    "20",
    "--save-every",
    "1",
  ]);
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, /loss is (NaN|Infinity)/);
  for (const e of r.err.trim().split("\n")) {
    assert.ok(!/^\s+at /.test(e), `stack trace printed: ${r.err}`);
  }
  await Deno.remove(fx.root, { recursive: true });
});
