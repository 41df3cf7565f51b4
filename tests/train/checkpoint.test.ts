import assert from "node:assert/strict";
import { BatchSampler } from "../../lib/data/batch.ts";
import { Rng } from "../../lib/rng.ts";
import {
  canonicalJson,
  type CheckpointState,
  configHash,
  hasCheckpoint,
  type HostTensor,
  loadCheckpoint,
  resumeSettings,
  saveCheckpoint,
} from "../../lib/train/checkpoint.ts";
import { parseTrainArgs, type TrainArgs } from "../../lib/train/args.ts";

function randomTensor(rng: Rng, shape: number[]): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.normal();
  return { shape, data };
}

/** A state as the training loop would build it, after `step` steps. */
async function makeState(step: number, seed = 1): Promise<CheckpointState> {
  const rng = new Rng(seed);
  const trainable = new Map<string, HostTensor>([
    ["transformer.h.0.attn.c_attn.lora_A.weight", randomTensor(rng, [4, 16])],
    ["transformer.h.0.attn.c_attn.lora_B.weight", randomTensor(rng, [48, 4])],
    ["transformer.ln_f.bias", randomTensor(rng, [16])],
  ]);
  const buffers: CheckpointState["optimizer"]["buffers"] = {};
  for (const [name, t] of trainable) {
    buffers[name] = {
      m: randomTensor(rng, t.shape).data,
      v: randomTensor(rng, t.shape).data.map(Math.abs),
    };
  }
  const tokens = new Int32Array(1000).map((_, i) => i % 97);
  const sampler = new BatchSampler(tokens, { batchSize: 2, seqLen: 8, seed: 3 });
  for (let i = 0; i < step; i++) sampler.next();
  const dropout = new Rng(7);
  for (let i = 0; i < step * 5; i++) dropout.normal();
  const args = parseTrainArgs(["--steps", "20"], new Date(0)) as TrainArgs;
  return {
    step,
    trainable,
    optimizer: { kind: "adamw", step, buffers },
    sampler: sampler.getState(),
    dropoutRng: dropout.getState(),
    configHash: await configHash(resumeSettings(args)),
    args,
    extra: { elapsed_s: 12.5 },
  };
}

async function tempRun(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "loralab-ckpt-" });
}

async function entries(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

function shapes(s: CheckpointState): Map<string, number[]> {
  return new Map([...s.trainable].map(([n, t]) => [n, t.shape]));
}

Deno.test("checkpoint: round trip restores every tensor, buffer and state exactly", async () => {
  const run = await tempRun();
  assert.equal(await hasCheckpoint(run), false);
  const state = await makeState(5);
  await saveCheckpoint(run, state);
  assert.equal(await hasCheckpoint(run), true);
  assert.deepEqual(await entries(run), ["checkpoint"]);
  assert.deepEqual(await entries(`${run}/checkpoint`), [
    "optimizer.safetensors",
    "state.json",
    "trainable.safetensors",
  ]);
  const loaded = await loadCheckpoint(run, {
    configHash: state.configHash,
    trainable: shapes(state),
    optimizerKind: "adamw",
  });
  // JSON turns `undefined` (the default backend) into a missing key.
  const { backend: _b, ...argsWithoutBackend } = state.args as TrainArgs;
  assert.deepEqual(loaded, { ...state, args: argsWithoutBackend });

  // The restored sampler and dropout RNG continue exactly like the originals.
  const tokens = new Int32Array(1000).map((_, i) => i % 97);
  const a = new BatchSampler(tokens, { batchSize: 2, seqLen: 8, seed: 3 });
  for (let i = 0; i < 5; i++) a.next();
  const b = new BatchSampler(tokens, { batchSize: 2, seqLen: 8, seed: 3 });
  b.setState(loaded.sampler);
  assert.deepEqual(b.next(), a.next());
  const r = new Rng(0);
  r.setState(loaded.dropoutRng);
  const r0 = new Rng(7);
  for (let i = 0; i < 25; i++) r0.normal();
  assert.equal(r.normal(), r0.normal());

  // Optimizer buffers are stored as <param>.m / <param>.v, shaped like the parameter.
  const { parseSafetensors } = await import("../../lib/io/safetensors.ts");
  const opt = parseSafetensors(await Deno.readFile(`${run}/checkpoint/optimizer.safetensors`));
  assert.deepEqual([...opt.tensors.keys()].sort(), [
    "transformer.h.0.attn.c_attn.lora_A.weight.m",
    "transformer.h.0.attn.c_attn.lora_A.weight.v",
    "transformer.h.0.attn.c_attn.lora_B.weight.m",
    "transformer.h.0.attn.c_attn.lora_B.weight.v",
    "transformer.ln_f.bias.m",
    "transformer.ln_f.bias.v",
  ]);
  assert.deepEqual(opt.tensors.get("transformer.h.0.attn.c_attn.lora_B.weight.m")!.shape, [48, 4]);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: a newer save replaces the older one and leaves nothing behind", async () => {
  const run = await tempRun();
  await saveCheckpoint(run, await makeState(5));
  await saveCheckpoint(run, await makeState(10, 2));
  assert.deepEqual(await entries(run), ["checkpoint"]);
  const loaded = await loadCheckpoint(run);
  assert.equal(loaded.step, 10);
  assert.deepEqual(loaded.trainable, (await makeState(10, 2)).trainable);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: a failure in the middle of a save leaves the previous checkpoint intact", async () => {
  const run = await tempRun();
  const first = await makeState(5);
  await saveCheckpoint(run, first);
  const before = await Deno.readFile(`${run}/checkpoint/trainable.safetensors`);

  // state.json is written last: args that JSON cannot hold make the save fail after both
  // tensor files were written into the temporary folder.
  const bad = await makeState(10, 2);
  bad.args = { big: 1n };
  await assert.rejects(() => saveCheckpoint(run, bad), /BigInt/);
  assert.deepEqual(await entries(run), ["checkpoint"], "temporary folder removed");
  assert.deepEqual(await Deno.readFile(`${run}/checkpoint/trainable.safetensors`), before);
  assert.equal((await loadCheckpoint(run)).step, 5);

  // Invalid tensors are refused before anything is written.
  const mis = await makeState(10, 2);
  mis.optimizer.buffers["transformer.ln_f.bias"].m = new Float32Array(3);
  await assert.rejects(
    () => saveCheckpoint(run, mis),
    /bad optimizer buffer transformer\.ln_f\.bias\.m/,
  );
  const orphan = await makeState(10, 2);
  orphan.optimizer.buffers["nope"] = { m: new Float32Array(1) };
  await assert.rejects(() => saveCheckpoint(run, orphan), /optimizer state for nope/);
  assert.equal((await loadCheckpoint(run)).step, 5);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: recovery after a crash between the two renames", async () => {
  const run = await tempRun();
  await saveCheckpoint(run, await makeState(5));
  // Crash after `checkpoint` -> `checkpoint.old`, before the new folder was renamed in; the
  // new folder is still a temporary one.
  await Deno.rename(`${run}/checkpoint`, `${run}/checkpoint.old`);
  await Deno.mkdir(`${run}/checkpoint.tmp-1234`);
  await Deno.writeTextFile(`${run}/checkpoint.tmp-1234/trainable.safetensors`, "half");
  assert.equal(await hasCheckpoint(run), true);
  assert.equal((await loadCheckpoint(run)).step, 5);
  assert.deepEqual(await entries(run), ["checkpoint", "checkpoint.tmp-1234"]);
  // The next save cleans up the stale temporary folder.
  await saveCheckpoint(run, await makeState(6));
  assert.deepEqual(await entries(run), ["checkpoint"]);

  // Crash after the new folder was renamed in, before `checkpoint.old` was deleted.
  await Deno.mkdir(`${run}/checkpoint.old`);
  assert.equal((await loadCheckpoint(run)).step, 6);
  assert.deepEqual(await entries(run), ["checkpoint"]);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: load errors are clear", async () => {
  const run = await tempRun();
  await assert.rejects(() => loadCheckpoint(run), /no checkpoint in .*checkpoint\/state\.json/);
  const state = await makeState(5);
  await saveCheckpoint(run, state);
  const dir = `${run}/checkpoint`;

  await assert.rejects(
    () => loadCheckpoint(run, { configHash: "f".repeat(64) }),
    /was saved with config hash [0-9a-f]{12}…, this run has ffffffffffff… \(different flags/,
  );
  await assert.rejects(
    () => loadCheckpoint(run, { optimizerKind: "sgd" }),
    /optimizer state is for adamw, this run uses sgd/,
  );
  const fewer = shapes(state);
  fewer.delete("transformer.ln_f.bias");
  fewer.set("transformer.ln_f.weight", [16]);
  await assert.rejects(
    () => loadCheckpoint(run, { trainable: fewer }),
    /trainable tensors differ from the model's \(missing transformer\.ln_f\.weight; not in the model transformer\.ln_f\.bias\)/,
  );
  const other = shapes(state);
  other.set("transformer.ln_f.bias", [32]);
  await assert.rejects(
    () => loadCheckpoint(run, { trainable: other }),
    /transformer\.ln_f\.bias has shape \[16\], the model's is \[32\]/,
  );

  const bytes = await Deno.readFile(`${dir}/optimizer.safetensors`);
  bytes[bytes.length - 1] ^= 0xff;
  await Deno.writeFile(`${dir}/optimizer.safetensors`, bytes);
  await assert.rejects(
    () => loadCheckpoint(run),
    /optimizer\.safetensors does not match the size and SHA-256 in state\.json/,
  );
  await Deno.remove(`${dir}/optimizer.safetensors`);
  await assert.rejects(() => loadCheckpoint(run), /checkpoint .*: missing optimizer\.safetensors/);
  await Deno.writeTextFile(`${dir}/state.json`, "{");
  await assert.rejects(() => loadCheckpoint(run), /state\.json is not valid JSON/);
  await Deno.writeTextFile(`${dir}/state.json`, '{"format":"other"}');
  await assert.rejects(() => loadCheckpoint(run), /not a loralab-checkpoint v1 file/);
  await Deno.remove(`${dir}/state.json`);
  await assert.rejects(() => loadCheckpoint(run), /missing state\.json/);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: config hash ignores key order and the flags that may change on resume", async () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [2, 1], c: null } }),
    '{"a":{"c":null,"d":[2,1]},"b":1}',
  );
  assert.equal(await configHash({ a: 1, b: 2 }), await configHash({ b: 2, a: 1 }));
  assert.notEqual(await configHash({ a: 1 }), await configHash({ a: 2 }));
  const now = new Date(0);
  const a = parseTrainArgs(["--rank", "4"], now) as TrainArgs;
  const b = parseTrainArgs(
    ["--rank", "4", "--out", "x", "--eval-every", "7", "--backend", "cpu"],
    now,
  ) as TrainArgs;
  const c = parseTrainArgs(["--rank", "8"], now) as TrainArgs;
  assert.equal(await configHash(resumeSettings(a)), await configHash(resumeSettings(b)));
  assert.notEqual(await configHash(resumeSettings(a)), await configHash(resumeSettings(c)));
});

Deno.test("checkpoint: a process killed during saves always leaves a complete checkpoint", async () => {
  const run = await tempRun();
  for (let round = 0; round < 3; round++) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        new URL("./fixtures/save_loop.ts", import.meta.url).pathname,
        run,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    // Wait for a few saves, then kill at an arbitrary point of the next ones.
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while ((out.match(/\n/g) ?? []).length < 3 + round) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    await new Promise((r) => setTimeout(r, 7 * round));
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel().catch(() => {});
    const lastPrinted = Number(out.trim().split("\n").at(-1));
    const loaded = await loadCheckpoint(run);
    assert.ok(loaded.step >= lastPrinted, `step ${loaded.step} < ${lastPrinted}`);
    const w = loaded.trainable.get("w")!.data;
    assert.ok(w.every((x) => x === loaded.step), "tensor matches its state.json");
    assert.ok(loaded.optimizer.buffers.w.m.every((x) => x === loaded.step));
  }
  await Deno.remove(run, { recursive: true });
});
