/**
 * Instruction batches: rows by hand (cut, padding, packing, masked boundaries), epochs,
 * determinism, exact resume through JSON, and the unmasked/masked counts.
 */

import assert from "node:assert/strict";
import {
  batchFromRows,
  BatchSampler,
  countExampleTargets,
  countTargets,
  type EncodedExample,
  evalExampleBatches,
  ExampleSampler,
} from "../../lib/data/mod.ts";

const M = -100;

/** An example from ids and mask given as arrays. */
function ex(ids: number[], mask: number[], line = 1): EncodedExample {
  return {
    ids: Int32Array.from(ids),
    mask: Uint8Array.from(mask),
    promptLength: mask.indexOf(1),
    line,
  };
}

Deno.test("batchFromRows: one example per row, cut at T + 1, padded with masked targets", () => {
  const a = ex([1, 2, 3, 4], [0, 0, 1, 1]);
  const long = ex([5, 6, 7, 8, 9, 10, 11], [0, 1, 0, 1, 1, 1, 1]);
  const b = batchFromRows([[a], [long]], 4);
  // row 0: x = 1 2 3 4, y = (2 masked) 3 4 pad
  // row 1: x = 5 6 7 8, y = 6 (7 masked) 8 9; 10, 11 are cut
  assert.deepEqual(Array.from(b.x), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(Array.from(b.y), [M, 3, 4, M, 6, M, 8, 9]);
  assert.equal(countTargets(b.y), 5);
  assert.deepEqual(countExampleTargets([a, long], 4), {
    trained: 5,
    masked: 2,
    truncated: 1,
    empty: 0,
  });
});

Deno.test("batchFromRows: packed rows mask every example's first token (no cross-example target)", () => {
  const a = ex([1, 2, 3], [0, 1, 1]);
  const b = ex([4, 5], [0, 1]);
  const batch = batchFromRows([[a, b]], 6);
  // stream 1 2 3 4 5 (pad pad): x = 1 2 3 4 5 0, y = 2 3 (4 masked: b's first token) 5 pad pad
  assert.deepEqual(Array.from(batch.x), [1, 2, 3, 4, 5, 0]);
  assert.deepEqual(Array.from(batch.y), [2, 3, M, 5, M, M]);
});

Deno.test("ExampleSampler: epochs are permutations; packing fills rows; same seed same batches", () => {
  const examples = Array.from(
    { length: 7 },
    (_, k) =>
      ex(Array.from({ length: 2 + k }, () => 10 + k), [0, ...new Array(1 + k).fill(1)], k + 1),
  );
  const s = new ExampleSampler(examples, { batchSize: 1, seqLen: 16, seed: 3 });
  const firstEpoch = Array.from({ length: 7 }, () => s.next().starts[0]);
  assert.deepEqual([...firstEpoch].sort(), [0, 1, 2, 3, 4, 5, 6]);
  const secondEpoch = Array.from({ length: 7 }, () => s.next().starts[0]);
  assert.deepEqual([...secondEpoch].sort(), [0, 1, 2, 3, 4, 5, 6]);
  assert.notDeepEqual(secondEpoch, firstEpoch);
  // Each row is its example: x starts with its id, targets are its tokens after the first.
  const one = new ExampleSampler(examples, { batchSize: 2, seqLen: 4, seed: 3 }).next();
  for (let b = 0; b < 2; b++) {
    const k = one.starts[b];
    assert.equal(one.x[b * 4], 10 + k);
    const trained = Math.min(k + 1, 4);
    assert.equal(one.y.subarray(b * 4, b * 4 + 4).filter((v) => v !== M).length, trained);
  }
  // Packed: every row holds whole examples up to seqLen + 1 = 9 tokens, each example once.
  const p = new ExampleSampler(examples, { batchSize: 3, seqLen: 8, seed: 5, pack: true });
  const seen: number[] = [];
  for (let i = 0; i < 2; i++) {
    const batch = p.next();
    for (let b = 0; b < 3; b++) {
      const x = Array.from(batch.x.subarray(b * 8, b * 8 + 8));
      const y = Array.from(batch.y.subarray(b * 8, b * 8 + 8));
      // Runs of equal ids are whole examples; each run's first target is masked.
      for (let j = 0; j < 8; j++) {
        const next = j + 1 < 8 ? x[j + 1] : null;
        if (y[j] !== M) assert.equal(y[j], x[j], `target ${j} of row ${b} stays in its example`);
        if (next !== null && next !== x[j] && next !== 0) assert.equal(y[j], M, "boundary masked");
      }
      for (let j = 0; j < 8; j++) {
        if (x[j] !== 0 && (j === 0 || x[j - 1] !== x[j])) seen.push(x[j] - 10);
      }
    }
  }
  assert.ok(seen.length > 6, `packing put ${seen.length} examples in 6 rows`);
  const a = new ExampleSampler(examples, { batchSize: 2, seqLen: 5, seed: 9, pack: true });
  const b = new ExampleSampler(examples, { batchSize: 2, seqLen: 5, seed: 9, pack: true });
  for (let i = 0; i < 10; i++) assert.deepEqual(a.next(), b.next());
});

Deno.test("ExampleSampler: a state through JSON continues the exact batches (plain and packed)", () => {
  const examples = Array.from(
    { length: 5 },
    (_, k) =>
      ex(Array.from({ length: 3 + 2 * k }, (_, i) => 100 * k + i), [
        0,
        0,
        ...new Array(1 + 2 * k).fill(1),
      ]),
  );
  for (const pack of [false, true]) {
    const opts = { batchSize: 3, seqLen: 6, seed: 11, pack };
    const full = new ExampleSampler(examples, opts);
    const want = Array.from({ length: 12 }, () => full.next());
    const first = new ExampleSampler(examples, opts);
    for (let i = 0; i < 7; i++) first.next();
    const state = JSON.parse(JSON.stringify(first.getState()));
    assert.equal(state.kind, "examples");
    const resumed = new ExampleSampler(examples, opts);
    resumed.setState(state);
    assert.equal(resumed.step, 7);
    for (let i = 7; i < 12; i++) {
      assert.deepEqual(resumed.next(), want[i], `batch ${i} pack ${pack}`);
    }
    // The wrong packing, or a token-stream sampler's state, is refused.
    const other = new ExampleSampler(examples, { ...opts, pack: !pack });
    assert.throws(
      () => other.setState(state),
      /state is for \(examples, tokens, batchSize, seqLen, pack\)/,
    );
  }
  const stream = new BatchSampler(new Int32Array(50), { batchSize: 2, seqLen: 4, seed: 0 });
  const s = new ExampleSampler(examples, { batchSize: 2, seqLen: 4, seed: 0 });
  assert.throws(() => s.setState(stream.getState()), /token-stream sampler/);
});

Deno.test("evalExampleBatches: examples in order, one per row, last batch short", () => {
  const examples = [ex([1, 2], [0, 1]), ex([3, 4, 5], [0, 0, 1]), ex([6, 7], [0, 1])];
  const batches = [...evalExampleBatches(examples, 2, 3)];
  assert.equal(batches.length, 2);
  assert.deepEqual(Array.from(batches[0].x), [1, 2, 0, 3, 4, 5]);
  assert.deepEqual(Array.from(batches[0].y), [2, M, M, M, 5, M]);
  assert.deepEqual(Array.from(batches[1].x), [6, 7, 0]);
  assert.deepEqual(Array.from(batches[1].y), [7, M, M]);
  assert.deepEqual(Array.from(batches[1].starts), [2]);
});
