import assert from "node:assert/strict";
import {
  type Batch,
  BatchSampler,
  ByteTokenizer,
  encodeDocuments,
  evalBatches,
  evalWindowCount,
} from "../../lib/data/mod.ts";

/** tokens[i] = i, so every x/y value is its own position in the stream. */
const arange = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

/** Checks that each row is a window of `tokens` at its start and y is x shifted by one. */
function checkBatch(tokens: Int32Array, batch: Batch, B: number, T: number): void {
  assert.equal(batch.batchSize, B);
  assert.equal(batch.seqLen, T);
  assert.equal(batch.x.length, B * T);
  assert.equal(batch.y.length, B * T);
  for (let b = 0; b < B; b++) {
    const s = batch.starts[b];
    assert.ok(s >= 0 && s + T + 1 <= tokens.length, `window ${s} inside the stream`);
    for (let t = 0; t < T; t++) {
      assert.equal(batch.x[b * T + t], tokens[s + t]);
      assert.equal(batch.y[b * T + t], tokens[s + t + 1]);
      if (t + 1 < T) assert.equal(batch.y[b * T + t], batch.x[b * T + t + 1], "y = x shifted");
    }
  }
}

Deno.test("encodeDocuments: end-of-text after every document", () => {
  const tok = new ByteTokenizer();
  const ids = encodeDocuments(tok, ["ab", "", "é"]);
  assert.deepEqual([...ids], [97, 98, 256, 256, 0xc3, 0xa9, 256]);
  assert.ok(ids instanceof Int32Array);
});

Deno.test("BatchSampler: windows inside the stream, y = x shifted, every start reachable", () => {
  const tokens = arange(12);
  const T = 4;
  const sampler = new BatchSampler(tokens, { batchSize: 3, seqLen: T, seed: 5 });
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const batch = sampler.next();
    checkBatch(tokens, batch, 3, T);
    for (const s of batch.starts) seen.add(s);
  }
  assert.deepEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7], "0 .. N-T-1");
  assert.equal(sampler.step, 200);
  // Shortest stream: exactly one window.
  const one = new BatchSampler(arange(5), { batchSize: 2, seqLen: 4, seed: 1 }).next();
  assert.deepEqual([...one.starts], [0, 0]);
});

Deno.test("BatchSampler: deterministic per seed", () => {
  const tokens = arange(1000);
  const draw = (seed: number) => {
    const s = new BatchSampler(tokens, { batchSize: 4, seqLen: 16, seed });
    return Array.from({ length: 5 }, () => s.next());
  };
  assert.deepEqual(draw(3), draw(3));
  assert.notDeepEqual(draw(3)[0].starts, draw(4)[0].starts);
});

Deno.test("BatchSampler: getState/setState resumes the exact sequence (through JSON)", () => {
  const tokens = encodeDocuments(new ByteTokenizer(), ["Call me Ishmael.", "Some years ago."]);
  const opts = { batchSize: 2, seqLen: 8, seed: 11 };
  const a = new BatchSampler(tokens, opts);
  for (let i = 0; i < 7; i++) a.next();
  const saved = JSON.parse(JSON.stringify(a.getState()));
  const rest = Array.from({ length: 5 }, () => a.next());

  const b = new BatchSampler(tokens, { ...opts, seed: 999 }); // the seed is in the state
  b.setState(saved);
  assert.equal(b.step, 7);
  assert.deepEqual(Array.from({ length: 5 }, () => b.next()), rest);
  assert.equal(b.step, 12);

  const uninterrupted = new BatchSampler(tokens, opts);
  const all = Array.from({ length: 12 }, () => uninterrupted.next());
  assert.deepEqual(all.slice(7), rest);

  // getState is a copy: drawing more does not change a saved state.
  const st = a.getState();
  a.next();
  assert.notDeepEqual(a.getState().rng, st.rng);
});

Deno.test("BatchSampler: clear errors", () => {
  assert.throws(
    () => new BatchSampler(arange(4), { batchSize: 1, seqLen: 4, seed: 0 }),
    /at least seqLen \+ 1 = 5 tokens/,
  );
  assert.throws(
    () => new BatchSampler(arange(10), { batchSize: 0, seqLen: 4, seed: 0 }),
    /batchSize must be a positive integer/,
  );
  assert.throws(
    () => new BatchSampler(arange(10), { batchSize: 1, seqLen: 2.5, seed: 0 }),
    /seqLen must be a positive integer/,
  );
  const s = new BatchSampler(arange(100), { batchSize: 2, seqLen: 4, seed: 0 });
  const other = new BatchSampler(arange(100), { batchSize: 2, seqLen: 8, seed: 0 });
  assert.throws(() => other.setState(s.getState()), /state is for .* \(100, 2, 4\)/);
});

Deno.test("evalBatches: in order, non-overlapping, every target once, short last batch", () => {
  const T = 5;
  const tokens = arange(28); // (28 - 1) / 5 → 5 windows: batches of 2, 2, 1
  assert.equal(evalWindowCount(28, T), 5);
  const batches = [...evalBatches(tokens, 2, T)];
  assert.deepEqual(batches.map((b) => b.batchSize), [2, 2, 1]);
  const starts = batches.flatMap((b) => [...b.starts]);
  assert.deepEqual(starts, [0, 5, 10, 15, 20]);
  for (const b of batches) checkBatch(tokens, b, b.batchSize, T);
  const targets = batches.flatMap((b) => [...b.y]);
  assert.deepEqual(targets, [...arange(26)].slice(1), "targets 1..25, each once, in order");
  assert.deepEqual([...evalBatches(tokens, 2, T)], batches, "deterministic");

  // Exact fit: N - 1 a multiple of T covers every target.
  const exact = [...evalBatches(arange(21), 4, T)];
  assert.deepEqual(exact.flatMap((b) => [...b.y]), [...arange(21)].slice(1));
  assert.equal(evalWindowCount(5, 5), 0);
  assert.throws(() => [...evalBatches(arange(5), 1, 5)], /at least seqLen \+ 1/);
});
