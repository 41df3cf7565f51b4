import assert from "node:assert/strict";
import {
  DEFAULT_TARGETS,
  defaultEvalTokens,
  defaultSampleTokens,
  gradCheckpointFor,
  HELP,
  parseTrainArgs,
  resumedArgs,
  runTimestamp,
  type TrainArgs,
  UsageError,
} from "../../lib/train/args.ts";

const NOW = new Date("2026-11-28T20:54:07.123Z");

function parse(argv: string[]): TrainArgs {
  const a = parseTrainArgs(argv, NOW);
  assert.ok(!("help" in a), "unexpected help");
  return a as TrainArgs;
}

function fails(argv: string[], message: string): void {
  assert.throws(
    () => parseTrainArgs(argv, NOW),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
      assert.equal(e.message, message);
      assert.equal(e.exitCode, 2);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    },
  );
}

Deno.test("args: defaults (qlora)", () => {
  assert.deepEqual(parse([]), {
    method: "qlora",
    quant: "nf4",
    rank: 8,
    alpha: 16,
    rslora: false,
    targets: ["c_attn", "c_proj", "c_fc"],
    dropout: 0.05,
    steps: 300,
    lr: 2e-3,
    batch: 8,
    gradAccum: 1,
    ctx: 128,
    data: "moby-dick",
    val: null,
    trainOnPrompt: false,
    pack: false,
    base: "data/base",
    seed: 0,
    out: "runs/qlora-2026-11-28T20-54-07Z",
    resume: null,
    backend: undefined,
    evalEvery: 50,
    saveEvery: 100,
    evalTokens: 0,
    samples: 3,
    sampleTokens: 0,
    gradCheckpoint: null,
    layers: null,
    warnings: [],
    given: [],
  });
  assert.deepEqual(DEFAULT_TARGETS, ["c_attn", "c_proj", "c_fc"]);
  assert.equal(runTimestamp(NOW), "2026-11-28T20-54-07Z");
});

Deno.test("args: method-dependent defaults of --quant, --lr and --out", () => {
  const cases: [string, string, number][] = [
    ["qlora", "nf4", 2e-3],
    ["lora", "none", 2e-3],
    ["adapter", "none", 2e-3],
    ["bitfit", "none", 2e-3],
    ["full", "none", 3e-4],
    ["freeze-lower", "none", 3e-4],
  ];
  for (const [method, quant, lr] of cases) {
    const a = parse(["--method", method]);
    assert.equal(a.quant, quant, method);
    assert.equal(a.lr, lr, method);
    assert.equal(a.out, `runs/${method}-2026-11-28T20-54-07Z`);
  }
});

Deno.test("args: every flag", () => {
  const a = parse([
    "--method=lora",
    "--quant",
    "int8",
    "--rank",
    "4",
    "--alpha",
    "8.5",
    "--rslora",
    "--targets",
    "c_attn, c_proj",
    "--dropout",
    "0",
    "--steps",
    "20",
    "--lr",
    "1e-4",
    "--batch",
    "2",
    "--grad-accum",
    "3",
    "--ctx",
    "64",
    "--data",
    "corpus.jsonl",
    "--val",
    "val.txt",
    "--train-on-prompt",
    "--pack",
    "--base",
    "models/b",
    "--seed",
    "4294967295",
    "--out",
    "runs/x",
    "--backend",
    "cpu",
    "--eval-every",
    "0",
    "--save-every",
    "5",
  ]);
  assert.deepEqual(a, {
    method: "lora",
    quant: "int8",
    rank: 4,
    alpha: 8.5,
    rslora: true,
    targets: ["c_attn", "c_proj"],
    dropout: 0,
    steps: 20,
    lr: 1e-4,
    batch: 2,
    gradAccum: 3,
    ctx: 64,
    data: "corpus.jsonl",
    val: "val.txt",
    trainOnPrompt: true,
    pack: true,
    base: "models/b",
    seed: 4294967295,
    out: "runs/x",
    resume: null,
    backend: "cpu",
    evalEvery: 0,
    saveEvery: 5,
    evalTokens: 0,
    samples: 3,
    sampleTokens: 0,
    gradCheckpoint: null,
    layers: null,
    warnings: [],
    given: [
      "method",
      "quant",
      "rank",
      "alpha",
      "rslora",
      "targets",
      "dropout",
      "steps",
      "lr",
      "batch",
      "grad-accum",
      "ctx",
      "data",
      "val",
      "train-on-prompt",
      "pack",
      "base",
      "seed",
      "out",
      "backend",
      "eval-every",
      "save-every",
    ],
  });
  for (const q of ["nf4", "fp4", "int8", "f16"]) assert.equal(parse(["--quant", q]).quant, q);
  for (const b of ["cpu", "webgpu", "auto"]) assert.equal(parse(["--backend", b]).backend, b);
  assert.equal(parse(["--method", "freeze-lower", "--layers", "2"]).layers, 2);
  assert.equal(parse(["--method", "freeze-lower", "--layers", "0"]).layers, 0);
});

Deno.test("args: --resume continues in its own folder", () => {
  const a = parse(["--resume", "runs/old"]);
  assert.equal(a.resume, "runs/old");
  assert.equal(a.out, "runs/old");
  assert.equal(parse(["--resume", "runs/old/", "--out", "runs/old"]).out, "runs/old/");
  fails(
    ["--resume", "runs/old", "--out", "runs/new"],
    "--out runs/new with --resume runs/old: a resumed run continues in its own folder; drop --out",
  );
});

Deno.test("args: a resumed run keeps its settings; --eval-every, --save-every, --backend may change", () => {
  const saved = parse([
    "--method",
    "lora",
    "--eval-every",
    "20",
    "--save-every",
    "20",
    "--lr",
    "0.01",
  ]);
  const plain = resumedArgs(saved, parse(["--resume", "runs/old"]));
  assert.deepEqual(
    [plain.method, plain.lr, plain.evalEvery, plain.saveEvery, plain.out, plain.resume],
    ["lora", 0.01, 20, 20, "runs/old", "runs/old"],
  );
  const changed = resumedArgs(
    saved,
    parse(["--resume", "runs/old", "--save-every", "5", "--eval-every", "0", "--backend", "cpu"]),
  );
  assert.deepEqual([changed.evalEvery, changed.saveEvery, changed.backend], [0, 5, "cpu"]);
  // The run's own value again is fine; another value is an error naming the flag and the value.
  assert.equal(resumedArgs(saved, parse(["--resume", "runs/old", "--lr", "0.01"])).lr, 0.01);
  for (
    const [flags, was] of [
      [["--lr", "0.1"], "--lr 0.01"],
      [["--method", "qlora"], "--method lora"],
      [["--targets", "c_attn"], "--targets c_attn,c_proj,c_fc"],
      [["--rslora"], "--rslora false"],
    ] as const
  ) {
    assert.throws(
      () => resumedArgs(saved, parse(["--resume", "runs/old", ...flags])),
      (e: unknown) =>
        e instanceof UsageError && e.message.startsWith(`${flags[0]} with --resume runs/old: `) &&
        e.message.includes(`started with ${was},`),
    );
  }
  // run.json files written before `given` existed resume with their saved values.
  const old = { ...saved, given: undefined };
  assert.equal(resumedArgs(old, parse(["--resume", "r"])).saveEvery, 20);
});

Deno.test("args: --eval-tokens, --samples, --sample-tokens; reporting flags may change on resume", () => {
  const a = parse(["--eval-tokens", "4096", "--samples", "0", "--sample-tokens", "20"]);
  assert.deepEqual([a.evalTokens, a.samples, a.sampleTokens], [4096, 0, 20]);
  assert.equal(parse(["--eval-tokens", "all"]).evalTokens, null);
  fails(
    ["--ctx", "64", "--eval-tokens", "63"],
    "--eval-tokens 63: expected at least one window of --ctx 64 tokens, all or auto",
  );
  fails(["--samples=-1"], "--samples -1: expected a non-negative integer");
  fails(["--sample-tokens", "0"], "--sample-tokens 0: expected a positive integer");
  const saved = parse(["--eval-tokens", "8192", "--samples", "1"]);
  const kept = resumedArgs(saved, parse(["--resume", "r"]));
  assert.deepEqual([kept.evalTokens, kept.samples, kept.sampleTokens], [8192, 1, 0]);
  // auto: sized to the model; the shipped 2 M-parameter model keeps the former 24576 and 160.
  assert.equal(parse(["--eval-tokens", "auto", "--sample-tokens", "auto"]).evalTokens, 0);
  assert.deepEqual([defaultEvalTokens(1_952_064, 128), defaultSampleTokens(1_952_064)], [
    24576,
    160,
  ]);
  assert.deepEqual([defaultEvalTokens(152e6, 128), defaultSampleTokens(152e6)], [3200, 131]);
  assert.deepEqual([defaultEvalTokens(1.1e9, 128), defaultSampleTokens(1.1e9)], [384, 18]);
  assert.deepEqual([defaultEvalTokens(7e9, 512), defaultSampleTokens(7e9)], [512, 16]);
  const changed = resumedArgs(
    saved,
    parse(["--resume", "r", "--samples", "0", "--eval-tokens", "all"]),
  );
  assert.deepEqual([changed.evalTokens, changed.samples], [null, 0]);
});

Deno.test("args: --help returns the help text, which lists every flag with its default", () => {
  assert.deepEqual(parseTrainArgs(["--help"]), { help: HELP });
  assert.deepEqual(parseTrainArgs(["--rank", "4", "--help"]), { help: HELP });
  for (
    const flag of [
      "method",
      "quant",
      "rank",
      "alpha",
      "rslora",
      "targets",
      "dropout",
      "layers",
      "steps",
      "lr",
      "batch",
      "grad-accum",
      "ctx",
      "seed",
      "data",
      "val",
      "train-on-prompt",
      "pack",
      "base",
      "out",
      "resume",
      "eval-every",
      "eval-tokens",
      "samples",
      "sample-tokens",
      "save-every",
      "grad-checkpoint",
      "backend",
      "help",
    ]
  ) {
    assert.match(HELP, new RegExp(`--${flag}\\b`), flag);
  }
  for (
    const d of [
      "default qlora",
      "default nf4 for qlora",
      "default 8)",
      "default 16)",
      "default c_attn,c_proj,c_fc",
      "default 0.05",
      "default 300",
      "0.002",
      "0.0003",
      "default 1)",
      "default 128",
      "default 0)",
      "default moby-dick",
      "default data/base",
      "runs/<method>-<UTC timestamp>",
      "default 50",
      "default 100",
    ]
  ) {
    assert.ok(HELP.includes(d), d);
  }
  for (const line of HELP.split("\n")) assert.ok(line.length <= 100, line);
});

Deno.test("args: each bad input names the flag and the problem", () => {
  const cases: [string[], string][] = [
    [["--foo"], "unknown flag --foo (see --help)"],
    [["-x"], "unknown flag -x (see --help)"],
    [["extra"], "unexpected argument extra: train takes only flags (see --help)"],
    [["--rank"], "--rank: missing value"],
    [
      ["--rank", "-1"],
      '--rank: missing value (a value starting with "-" must be written --rank=VALUE)',
    ],
    [["--rslora=yes"], "--rslora takes no value"],
    [
      ["--method", "dora"],
      "--method dora: expected one of qlora, lora, full, adapter, bitfit, freeze-lower",
    ],
    [["--quant", "int4"], "--quant int4: expected one of nf4, fp4, int8, f16, none"],
    [
      ["--method", "qlora", "--quant", "none"],
      "--method qlora --quant none: QLoRA trains on a quantized base; use --method lora for f32",
    ],
    [
      ["--method", "full", "--quant", "nf4"],
      "--method full --quant nf4: full fine-tuning trains every weight in f32; drop --quant",
    ],
    [["--rank", "0"], "--rank 0: expected a positive integer"],
    [["--rank=-1"], "--rank -1: expected a positive integer"],
    [["--rank", "2.5"], "--rank 2.5: expected a positive integer"],
    [["--rank", "abc"], "--rank abc: expected a positive integer"],
    [["--rank", "0x10"], "--rank 0x10: expected a positive integer"],
    [["--alpha", "0"], "--alpha 0: expected a positive number"],
    [["--alpha", "Infinity"], "--alpha Infinity: expected a positive number"],
    [["--dropout", "1"], "--dropout 1: expected a number in [0, 1)"],
    [["--dropout=-0.1"], "--dropout -0.1: expected a number in [0, 1)"],
    [["--dropout", "x"], "--dropout x: expected a number"],
    [["--steps", "0"], "--steps 0: expected a positive integer"],
    [["--lr", "0"], "--lr 0: expected a positive number"],
    [["--lr", ""], '--lr "": expected a positive number'],
    [["--batch", "1.5"], "--batch 1.5: expected a positive integer"],
    [["--grad-accum", "0"], "--grad-accum 0: expected a positive integer"],
    [["--ctx", "0"], "--ctx 0: expected a positive integer"],
    [["--seed=-1"], "--seed -1: expected a non-negative integer"],
    [["--seed", "4294967296"], "--seed 4294967296: expected an integer in 0..4294967295"],
    [["--eval-every", "-"], "--eval-every -: expected a non-negative integer"],
    [["--save-every", "1.5"], "--save-every 1.5: expected a non-negative integer"],
    [["--layers", "x", "--method", "freeze-lower"], "--layers x: expected a non-negative integer"],
    [["--backend", "cuda"], "--backend cuda: expected one of cpu, webgpu, auto"],
    [["--data", ""], "--data: expected a non-empty value"],
    [["--out", " "], "--out: expected a non-empty value"],
    [
      ["--targets", "c_attn,,c_fc"],
      "--targets c_attn,,c_fc: empty name (expected a comma-separated list such as c_attn,c_proj)",
    ],
    [
      ["--targets", "c-attn"],
      '--targets c-attn: bad module name "c-attn" (expected a comma-separated list such as ' +
      "c_attn,c_proj)",
    ],
    [["--targets", "c_fc,c_fc"], '--targets c_fc,c_fc: "c_fc" is listed twice'],
  ];
  for (const [argv, msg] of cases) fails(argv, msg);
});

Deno.test("args: flags the method ignores give warnings, not errors", () => {
  assert.deepEqual(parse(["--method", "full", "--rank", "4", "--rslora"]).warnings, [
    "--rank, --rslora ignored: --method full has no LoRA layers",
  ]);
  assert.deepEqual(parse(["--method", "adapter", "--rank", "4", "--alpha", "2"]).warnings, [
    "--alpha ignored: --method adapter has no LoRA layers",
  ]);
  assert.deepEqual(parse(["--layers", "1"]).warnings, [
    "--layers ignored: it applies only to --method freeze-lower",
  ]);
  assert.deepEqual(parse(["--method", "lora", "--rank", "2", "--targets", "c_fc"]).warnings, []);
});

Deno.test("args: --grad-checkpoint, --no-grad-checkpoint and the size-based default", () => {
  assert.equal(parse([]).gradCheckpoint, null);
  assert.equal(parse(["--grad-checkpoint"]).gradCheckpoint, true);
  const off = parse(["--no-grad-checkpoint"]);
  assert.equal(off.gradCheckpoint, false);
  assert.deepEqual(off.given, ["grad-checkpoint"]); // one setting for --resume
  fails(
    ["--grad-checkpoint", "--no-grad-checkpoint"],
    "--grad-checkpoint and --no-grad-checkpoint: give one of them",
  );
  // auto: on from 500 M parameters (TinyLlama's 1.1 B), off below (the shipped model, 152 M)
  assert.deepEqual(gradCheckpointFor({ gradCheckpoint: null }, 1.1e9).on, true);
  assert.match(gradCheckpointFor({ gradCheckpoint: null }, 1.1e9).why, /1100 M parameters/);
  assert.equal(gradCheckpointFor({ gradCheckpoint: null }, 499_999_999).on, false);
  assert.equal(gradCheckpointFor({ gradCheckpoint: null }, 500e6).on, true);
  assert.equal(gradCheckpointFor({ gradCheckpoint: false }, 7e9).on, false);
  assert.equal(gradCheckpointFor({ gradCheckpoint: true }, 1e6).on, true);
});
