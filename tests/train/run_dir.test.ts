import assert from "node:assert/strict";
import { InputError } from "../../lib/train/input_error.ts";
import denoJson from "../../deno.json" with { type: "json" };
import {
  buildRunManifest,
  collectVersions,
  formatSamples,
  prepareRunDir,
  readRunJson,
  recordResume,
  writeRunJson,
  writeSamples,
} from "../../lib/train/run_dir.ts";

Deno.test("run dir: created with parents; an empty folder is accepted", async () => {
  const root = await Deno.makeTempDir({ prefix: "loralab-run-" });
  await prepareRunDir(`${root}/runs/a`);
  assert.ok((await Deno.stat(`${root}/runs/a`)).isDirectory);
  await prepareRunDir(`${root}/runs/a`); // still empty: fine
  await Deno.remove(root, { recursive: true });
});

Deno.test("run dir: refuses to overwrite a non-empty folder or a file, unless resuming", async () => {
  const root = await Deno.makeTempDir({ prefix: "loralab-run-" });
  const dir = `${root}/r`;
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/metrics.jsonl`, "");
  await assert.rejects(
    () => prepareRunDir(dir),
    new InputError(
      `${dir} exists and is not empty; choose another --out, or continue that run with ` +
        `--resume ${dir}`,
    ),
  );
  assert.deepEqual(await Deno.readTextFile(`${dir}/metrics.jsonl`), "", "untouched");
  await Deno.writeTextFile(`${root}/f`, "x");
  await assert.rejects(() => prepareRunDir(`${root}/f`), /exists and is not a folder/);

  await assert.rejects(() => prepareRunDir(`${root}/none`, { resume: true }), /no such folder/);
  await assert.rejects(() => prepareRunDir(`${root}/f`, { resume: true }), /not a folder/);
  await assert.rejects(
    () => prepareRunDir(dir, { resume: true }),
    /not a run folder \(no run\.json\)/,
  );
  await Deno.writeTextFile(`${dir}/run.json`, "{}");
  await prepareRunDir(dir, { resume: true });
  await Deno.remove(root, { recursive: true });
});

Deno.test("run dir: run.json records config, versions, data, backend; resumes append", async () => {
  const dir = await Deno.makeTempDir({ prefix: "loralab-run-" });
  const versions = await collectVersions();
  assert.equal(versions.loralab, denoJson.version);
  assert.equal(versions.deno, Deno.version.deno);
  assert.equal(versions.v8, Deno.version.v8);
  assert.equal(versions.typescript, Deno.version.typescript);
  assert.ok(versions.git === null || /^[0-9a-f]{40}(-dirty)?$/.test(versions.git), versions.git!);

  const m = await buildRunManifest({
    argv: ["--rank", "4"],
    config: { method: "qlora", rank: 4 },
    configHash: "abc",
    backend: "cpu",
    data: { train: { spec: "moby-dick", sha256: "00" } },
    extra: { base: { sha256: "11" } },
  });
  assert.equal(m.format, "loralab-run");
  assert.ok(!Number.isNaN(Date.parse(m.created)));
  await writeRunJson(dir, m);
  assert.deepEqual(await readRunJson(dir), m);
  const text = await Deno.readTextFile(`${dir}/run.json`);
  assert.ok(text.endsWith("}\n") && text.includes('\n  "config": {'), "pretty JSON");

  const after = await recordResume(dir, {
    step: 100,
    backend: "webgpu",
    at: "2026-11-29T00:00:00Z",
  });
  assert.equal(after.resumes.length, 1);
  assert.deepEqual(await readRunJson(dir), after);
  assert.equal(after.resumes[0].step, 100);
  assert.equal(after.resumes[0].backend, "webgpu");
  assert.deepEqual(after.config, m.config);

  await Deno.writeTextFile(`${dir}/run.json`, "[");
  await assert.rejects(() => readRunJson(dir), /run\.json: not valid JSON/);
  await Deno.remove(`${dir}/run.json`);
  await assert.rejects(() => readRunJson(dir), /run\.json: missing/);
  const entries = [];
  for await (const e of Deno.readDir(dir)) entries.push(e.name);
  assert.deepEqual(entries, [], "no temporary files left");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run dir: samples.txt", async () => {
  const dir = await Deno.makeTempDir({ prefix: "loralab-run-" });
  const samples = [
    { title: "base model", prompt: "Call me", text: "Call me Ishmael.\n\n" },
    { title: "after 300 steps", text: "It was the best" },
  ];
  assert.equal(
    formatSamples(samples),
    "=== base model ===\n[prompt] Call me\nCall me Ishmael.\n\n=== after 300 steps ===\nIt was the best\n",
  );
  await writeSamples(dir, samples);
  assert.equal(await Deno.readTextFile(`${dir}/samples.txt`), formatSamples(samples));
  await Deno.remove(dir, { recursive: true });
});
