import assert from "node:assert/strict";
import { fmtDuration, loadProgress, Progress } from "../../lib/train/progress.ts";

// Progress lines (tests run without a terminal: plain lines, at most one per interval).
function capture(fn: () => void | Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => lines.push(s);
  return Promise.resolve(fn()).then(() => lines).finally(() => (console.log = log));
}

Deno.test("progress: a line per interval with the ETA; onlyIfSlow stays silent when quick", async () => {
  assert.deepEqual([fmtDuration(5), fmtDuration(185), fmtDuration(3725)], ["5s", "3m05s", "1h02m"]);
  const plain = await capture(() => {
    const p = new Progress(4, "work ", 3600);
    for (let i = 1; i <= 4; i++) p.update(i, { loss: 1.5 }, i === 2);
  });
  // Within the interval: only the forced line and the last.
  assert.equal(plain.length, 2);
  assert.match(plain[0], /^work step 2\/4 \| loss 1\.5000 \| \d+s elapsed, ETA \d+s$/);
  assert.match(plain[1], /^work step 4\/4 /);
  const quick = await capture(() => {
    const p = new Progress(4, "validate ", 0.05, "stdout", true);
    for (let i = 1; i <= 4; i++) p.update(i, {});
  });
  assert.deepEqual(quick, [], "quick work prints nothing");
  const slow = await capture(async () => {
    const p = new Progress(3, "sampling ", 0.05, "stdout", true);
    p.update(1, {});
    await new Promise((r) => setTimeout(r, 80));
    p.update(2, {});
    p.update(3, {});
  });
  assert.equal(slow.length, 2, slow.join("\n"));
  assert.match(slow[0], /^sampling step 2\/3 /);
  assert.match(slow[1], /^sampling step 3\/3 /);
});

Deno.test("progress: loading reports MB, tensors and time quantizing, only when slow", async () => {
  const report = (n: number, q = 0) => ({
    tensors: n,
    totalTensors: 3,
    bytes: n * 2e6,
    totalBytes: 6e6,
    quantizeSeconds: q,
  });
  const quick = await capture(() => {
    const cb = loadProgress("loading ", "stdout", 0.05);
    for (let i = 1; i <= 3; i++) cb(report(i));
  });
  assert.deepEqual(quick, [], "a quick load prints nothing");
  const slow = await capture(async () => {
    const cb = loadProgress("loading ", "stdout", 0.05);
    cb(report(1));
    await new Promise((r) => setTimeout(r, 80));
    cb(report(2, 1.5));
    cb(report(3, 2));
  });
  assert.equal(slow.length, 2, slow.join("\n"));
  assert.match(slow[0], /^loading 4\/6 MB \| tensors 2\/3 \| quantizing 2s \| \d+s elapsed, ETA /);
  assert.match(slow[1], /^loading 6\/6 MB \| tensors 3\/3 /);
});
