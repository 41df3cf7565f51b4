import assert from "node:assert/strict";
import { formatRow, MetricsWriter, readMetrics } from "../../lib/train/metrics.ts";

async function tempFile(): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "loralab-metrics-" });
  return { dir, path: `${dir}/metrics.jsonl` };
}

function row(step: number, time: number) {
  return {
    step,
    loss: 3 - step / 10,
    ...(step % 3 === 0 ? { val_loss: 3.1 - step / 10 } : {}),
    lr: 1e-3,
    tokens_per_s: 1000 + time,
    time_s: time,
  };
}

/** The file's lines without the fields that depend on timing. */
async function untimed(path: string): Promise<unknown[]> {
  return (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) => {
    const { time_s: _t, tokens_per_s: _k, ...rest } = JSON.parse(l);
    return rest;
  });
}

Deno.test("metrics: rows are appended as whole JSON lines, step first", async () => {
  const { dir, path } = await tempFile();
  const w = await MetricsWriter.create(path);
  await w.append({ time_s: 0.5, step: 0, val_loss: 3.5 });
  await w.append({ step: 1, loss: 3.25, lr: 1e-3, tokens_per_s: 900, time_s: 1, grad_norm: 0.5 });
  await w.append({ step: 2, loss: NaN, lr: 1e-3, tokens_per_s: Infinity, time_s: 2 });
  w.close();
  w.close(); // idempotent
  const text = await Deno.readTextFile(path);
  assert.equal(
    text,
    '{"step":0,"time_s":0.5,"val_loss":3.5}\n' +
      '{"step":1,"loss":3.25,"lr":0.001,"tokens_per_s":900,"time_s":1,"grad_norm":0.5}\n' +
      '{"step":2,"loss":null,"lr":0.001,"tokens_per_s":null,"time_s":2}\n',
  );
  const rows = await readMetrics(path);
  assert.equal(rows.length, 3);
  assert.equal(rows[1].grad_norm, 0.5);
  assert.ok(Number.isNaN(rows[2].loss));
  await assert.rejects(() => w.append({ step: 3 }), /append after close/);
  await assert.rejects(() => MetricsWriter.create(path), /already exists/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("metrics: bad rows are refused before anything is written", async () => {
  const { dir, path } = await tempFile();
  const w = await MetricsWriter.create(path, { sync: false });
  await assert.rejects(() => w.append({ step: -1 }), /bad step -1/);
  await assert.rejects(() => w.append({ step: 1.5 }), /bad step 1.5/);
  assert.throws(
    () => formatRow({ step: 1, loss: "x" as unknown as number }),
    /loss is not a number/,
  );
  w.close();
  assert.equal(await Deno.readTextFile(path), "");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("metrics: resume truncates after the checkpoint step and equals an uninterrupted run", async () => {
  // Uninterrupted: steps 1..10.
  const a = await tempFile();
  const wa = await MetricsWriter.create(a.path, { sync: false });
  for (let s = 1; s <= 10; s++) await wa.append(row(s, s));
  wa.close();

  // Interrupted after step 7 (checkpoint at 5), with a torn last line, then resumed from 5.
  const b = await tempFile();
  const wb = await MetricsWriter.create(b.path, { sync: false });
  for (let s = 1; s <= 7; s++) await wb.append(row(s, s));
  wb.close();
  const f = await Deno.open(b.path, { append: true });
  await f.write(new TextEncoder().encode('{"step":8,"loss":2.'));
  f.close();
  // A torn last line is not a row; the complete ones still read.
  assert.equal((await readMetrics(b.path)).length, 7);

  const before = (await Deno.readTextFile(b.path)).split("\n").slice(0, 5).join("\n") + "\n";
  const wr = await MetricsWriter.resume(b.path, 5, { sync: false });
  assert.equal(await Deno.readTextFile(b.path), before, "kept lines are byte for byte the same");
  for (let s = 6; s <= 10; s++) await wr.append(row(s, 100 + s)); // other timings
  wr.close();

  assert.deepEqual(await untimed(b.path), await untimed(a.path));
  assert.notDeepEqual(await readMetrics(b.path), await readMetrics(a.path)); // times differ
  await Deno.remove(a.dir, { recursive: true });
  await Deno.remove(b.dir, { recursive: true });
});

Deno.test("metrics: resume of a missing file starts empty; a corrupt middle line is an error", async () => {
  const { dir, path } = await tempFile();
  const w = await MetricsWriter.resume(path, 3, { sync: false });
  await w.append({ step: 4, loss: 1 });
  w.close();
  assert.equal(await Deno.readTextFile(path), '{"step":4,"loss":1}\n');

  await Deno.writeTextFile(path, '{"step":1}\nnot json\n{"step":2}\n');
  await assert.rejects(() => readMetrics(path), /metrics\.jsonl:2: not a JSON line/);
  await assert.rejects(() => MetricsWriter.resume(path, 1), /metrics\.jsonl:2: not a JSON line/);
  await Deno.writeTextFile(path, '{"loss":1}\n');
  await assert.rejects(() => readMetrics(path), /:1: missing or bad "step"/);
  await Deno.remove(dir, { recursive: true });
});
