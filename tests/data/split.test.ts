import assert from "node:assert/strict";
import { loadMobyDick, splitByUnit } from "../../lib/data/mod.ts";

const units = Array.from({ length: 50 }, (_, i) => `unit ${i}`);

Deno.test("splitByUnit: disjoint, covers everything, keeps order, exact size", () => {
  for (const valFraction of [0.01, 0.1, 0.25, 0.5, 0.9]) {
    const s = splitByUnit(units, { valFraction, seed: 7 });
    const all = [...s.trainIndices, ...s.valIndices].sort((a, b) => a - b);
    assert.deepEqual(all, units.map((_, i) => i), "every unit in exactly one part");
    assert.equal(s.valIndices.length, Math.max(1, Math.round(valFraction * units.length)));
    assert.deepEqual(s.val, s.valIndices.map((i) => units[i]));
    assert.deepEqual(s.train, s.trainIndices.map((i) => units[i]));
    for (const idx of [s.trainIndices, s.valIndices]) {
      for (let k = 1; k < idx.length; k++) assert.ok(idx[k - 1] < idx[k], "input order kept");
    }
  }
});

Deno.test("splitByUnit: deterministic per seed, different across seeds", () => {
  const a = splitByUnit(units, { valFraction: 0.2, seed: 1 });
  const b = splitByUnit(units, { valFraction: 0.2, seed: 1 });
  assert.deepEqual(a, b);
  const c = splitByUnit(units, { valFraction: 0.2, seed: 2 });
  assert.notDeepEqual(a.valIndices, c.valIndices);
  // Regression pin: the documented rule (Fisher–Yates from Rng(seed), first nVal) on 10 units.
  const pinned = splitByUnit(Array.from({ length: 10 }, (_, i) => i), {
    valFraction: 0.3,
    seed: 42,
  });
  assert.deepEqual(pinned.valIndices, PINNED_VAL_10_SEED_42);
});

Deno.test("splitByUnit: edge cases", () => {
  const none = splitByUnit(units, { valFraction: 0, seed: 1 });
  assert.equal(none.val.length, 0);
  assert.equal(none.train.length, units.length);
  const two = splitByUnit(["a", "b"], { valFraction: 0.99, seed: 3 });
  assert.equal(two.val.length, 1, "training keeps at least one unit");
  assert.equal(two.train.length, 1);
  assert.equal(splitByUnit(["a", "b", "c"], { valFraction: 0.01, seed: 3 }).val.length, 1);
  assert.throws(() => splitByUnit(units, { valFraction: 1, seed: 1 }), /valFraction/);
  assert.throws(() => splitByUnit(units, { valFraction: -0.1, seed: 1 }), /valFraction/);
  assert.throws(() => splitByUnit(units, { valFraction: NaN, seed: 1 }), /valFraction/);
  assert.throws(() => splitByUnit(["only"], { valFraction: 0.5, seed: 1 }), /at least 2 units/);
  assert.deepEqual(splitByUnit([], { valFraction: 0, seed: 1 }).train, []);
});

Deno.test("splitByUnit: whole Moby-Dick chapters held out", async () => {
  const chapters = await loadMobyDick();
  const s = splitByUnit(chapters, { valFraction: 0.1, seed: 0 });
  assert.equal(s.val.length, 14);
  assert.equal(s.train.length + s.val.length, 136);
  const valTexts = new Set(s.val.map((c) => c.text));
  assert.ok(s.train.every((c) => !valTexts.has(c.text)));
});

/** Checked against an independent Python re-implementation of lib/rng.ts and the rule. */
const PINNED_VAL_10_SEED_42 = [2, 3, 8];
