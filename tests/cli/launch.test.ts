import assert from "node:assert/strict";
import { ByteTokenizer, cpu, GPT } from "../../lib/mod.ts";
import { saveModel } from "../../lib/io/mod.ts";
import { LaunchError, planLaunch } from "../../lib/cli/launch.ts";

// The launcher behind the deno tasks (issue 17.1): paths anywhere, least privilege kept.
const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

function flag(args: string[], name: string): string[] {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3).split(",") : [];
}

Deno.test("launch: path flags become absolute and are granted; nothing else is", async () => {
  const tmp = await Deno.realPath(await Deno.makeTempDir());
  await Deno.mkdir(`${tmp}/real`);
  await Deno.symlink(`${tmp}/real`, `${tmp}/link`);
  const p = planLaunch(
    "train",
    [
      "--data",
      "notes.txt",
      "--base=link",
      "--val",
      "moby-dick",
      "--out",
      "/abs/run",
      "--steps",
      "2",
    ],
    REPO,
    tmp,
  );
  // The command's own arguments, with relative paths taken from where the user typed them.
  const script = p.args.indexOf(`${REPO}/lib/cli/train.ts`);
  assert.ok(script > 0);
  assert.deepEqual(p.args.slice(script + 1), [
    "--data",
    `${tmp}/notes.txt`,
    `--base=${tmp}/link`,
    "--val",
    "moby-dick",
    "--out",
    "/abs/run",
    "--steps",
    "2",
  ]);
  // Read: the repository, each path and a link's real target; write: only --out.
  assert.deepEqual(
    flag(p.args, "allow-read").sort(),
    [REPO, `${tmp}/notes.txt`, `${tmp}/link`, `${tmp}/real`, "/abs/run"].sort(),
  );
  assert.deepEqual(flag(p.args, "allow-write"), ["/abs/run"]);
  assert.deepEqual(flag(p.args, "allow-run"), ["git"]);
  assert.ok(!p.args.includes("--allow-net") && !p.args.some((a) => a === "--allow-read"));
  // Without --out a run writes under runs/ only; --resume is its write path.
  assert.deepEqual(flag(planLaunch("train", [], REPO, tmp).args, "allow-write"), [`${REPO}/runs`]);
  assert.deepEqual(
    flag(planLaunch("train", ["--resume", "r"], REPO, tmp).args, "allow-write"),
    [`${tmp}/r`],
  );
  // generate writes nothing; pretrain defaults to data/base.
  assert.deepEqual(
    flag(planLaunch("generate", ["--adapter", "a"], REPO, tmp).args, "allow-write"),
    [],
  );
  assert.deepEqual(
    flag(planLaunch("pretrain", [], REPO, tmp).args, "allow-write"),
    [`${REPO}/data/base`],
  );
  assert.throws(() => planLaunch("nope", [], REPO, tmp), LaunchError);
  assert.throws(
    () => planLaunch("train", ["--data", "a,b.txt"], REPO, tmp),
    /--data a,b\.txt: paths with a comma cannot be granted/,
  );
  await Deno.remove(tmp, { recursive: true });
});

async function launch(cwd: string, argv: string[]) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-run",
      `${REPO}/lib/cli/launch.ts`,
      ...argv,
    ],
    cwd: REPO,
    env: { LORALAB_BACKEND: "cpu", INIT_CWD: cwd },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout),
    err: new TextDecoder().decode(r.stderr),
  };
}

Deno.test("launch: train, generate, eval and merge on a model and data outside the repository", async () => {
  const home = await Deno.realPath(await Deno.makeTempDir());
  const cfg = { vocab_size: 257, n_positions: 32, n_embd: 32, n_layer: 1, n_head: 2 };
  await saveModel(
    `${home}/models/tiny`,
    GPT.init(cfg, { device: cpu, seed: 1 }),
    new ByteTokenizer(),
  );
  const paras = Array.from(
    { length: 20 },
    (_, i) => `paragraph ${i}: ${"the whale and the sea ".repeat(6)}`,
  );
  await Deno.writeTextFile(`${home}/notes.txt`, paras.join("\n\n"));
  const common = ["--base", "models/tiny", "--data", "notes.txt", "--ctx", "16", "--batch", "2"];
  let r = await launch(home, [
    "train",
    ...common,
    "--steps",
    "2",
    "--out",
    "out/run",
    "--save-every",
    "0",
  ]);
  assert.equal(r.code, 0, r.err);
  const cfgJson = JSON.parse(await Deno.readTextFile(`${home}/out/run/adapter_config.json`));
  assert.equal(cfgJson.r, 8);
  r = await launch(home, [
    "generate",
    "--model",
    "models/tiny",
    "--adapter",
    "out/run",
    "--max-tokens",
    "4",
  ]);
  assert.equal(r.code, 0, r.err);
  // eval and merge too: the merged folder (written outside) scores as base + adapter.
  const evalOf = async (flags: string[]) => {
    const e = await launch(home, [
      "eval",
      "--data",
      "notes.txt",
      "--ctx",
      "16",
      "--json",
      ...flags,
    ]);
    assert.equal(e.code, 0, e.err);
    return JSON.parse(e.out).loss as number;
  };
  const adapted = await evalOf(["--base", "models/tiny", "--adapter", "out/run"]);
  r = await launch(home, [
    "merge",
    "--base",
    "models/tiny",
    "--adapter",
    "out/run",
    "--out",
    "merged",
  ]);
  assert.equal(r.code, 0, r.err);
  assert.ok(Math.abs((await evalOf(["--base", "merged"])) - adapted) < 1e-5);
  // The read sandbox still holds inside a granted folder: a link out of it is refused.
  await Deno.mkdir(`${home}/secret`);
  await Deno.writeTextFile(`${home}/secret/tokenizer.json`, "{}");
  await Deno.mkdir(`${home}/models/linked`);
  for (const f of ["config.json", "model.safetensors"]) {
    await Deno.copyFile(`${home}/models/tiny/${f}`, `${home}/models/linked/${f}`);
  }
  await Deno.symlink(`${home}/secret/tokenizer.json`, `${home}/models/linked/tokenizer.json`);
  r = await launch(home, ["train", ...common, "--base", "models/linked", "--out", "out/r2"]);
  assert.equal(r.code, 2, r.err);
  assert.match(
    r.err,
    /a link to .*secret\/tokenizer\.json\) is outside what this command may read/,
  );
  r = await launch(home, ["bogus"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown command bogus; expected one of train, generate/);
  await Deno.remove(home, { recursive: true });
});
