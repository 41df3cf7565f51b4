/**
 * The threshold form of the 4-bit nearest-code search (what the WGSL quantizer evaluates) gives
 * `nearestCode`'s answer for every f32 x tried: random x in [-1, 1], every threshold and midpoint
 * with its f32 neighbours, and the table values themselves.
 */

import assert from "node:assert/strict";
import { codeByThresholds, codeThresholds } from "../../lib/quant/code_thresholds.ts";
import { codeTable, type Format4, nearestCode } from "../../lib/quant/codes.ts";
import { Rng } from "../../lib/rng.ts";

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
function step(x: number, d: number): number {
  if (x === 0) return d * 2 ** -149;
  f32[0] = x;
  u32[0] += (x > 0) === (d > 0) ? 1 : -1;
  return f32[0];
}

for (const format of ["nf4", "fp4", "int4"] as Format4[]) {
  Deno.test(`code thresholds equal nearestCode on f32 inputs (${format})`, () => {
    const table = codeTable(format);
    const t = codeThresholds(table);
    assert.ok(t.thresholds.every((x, k) => k === 0 || x > t.thresholds[k - 1]), "ascending");
    const xs: number[] = [0, -0, 1, -1];
    for (const v of table) xs.push(v);
    for (let a = 0; a < 16; a++) {
      for (let b = 0; b < 16; b++) xs.push(Math.fround((table[a] + table[b]) / 2));
    }
    for (const th of t.thresholds) xs.push(th);
    const near: number[] = [];
    for (const x of xs) {
      let lo = x, hi = x;
      for (let i = 0; i < 3; i++) near.push(lo = step(lo, -1), hi = step(hi, 1));
    }
    const rng = new Rng(7);
    for (let i = 0; i < 100_000; i++) near.push(Math.fround(2 * rng.uniform() - 1));
    for (const x of [...xs, ...near]) {
      assert.equal(codeByThresholds(t, x), nearestCode(table, x), `${format}: x = ${x}`);
    }
  });
}
