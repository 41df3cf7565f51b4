// Code tables against the published values, typed here independently of lib/quant/codes.ts,
// and the nearest-code search against a brute-force sort.
import assert from "node:assert/strict";
import {
  codeSearch,
  codeTable,
  FP4_VALUES,
  INT4_VALUES,
  nearestCode,
  NF4_VALUES,
} from "../../lib/quant/mod.ts";
import { uniforms } from "../../lib/quant/rng.ts";

// bitsandbytes get_4bit_type("nf4"), as printed in bitsandbytes/functional.py.
const NF4_PUBLISHED = [
  -1.0,
  -0.6961928009986877,
  -0.5250730514526367,
  -0.39491748809814453,
  -0.28444138169288635,
  -0.18477343022823334,
  -0.09105003625154495,
  0.0,
  0.07958029955625534,
  0.16093020141124725,
  0.24611230194568634,
  0.33791524171829224,
  0.44070982933044434,
  0.5626170039176941,
  0.7229568362236023,
  1.0,
];

Deno.test("codes: NF4, FP4 and int4 tables match their definitions", () => {
  assert.deepEqual([...NF4_VALUES], NF4_PUBLISHED);
  // The NF4 values are f32 numbers (printed from a float32 tensor): f32 table is exact.
  assert.deepEqual([...codeTable("nf4")], NF4_PUBLISHED);
  const fp4Pos = [0, 0.0625, 8, 12, 4, 6, 2, 3];
  for (let c = 0; c < 8; c++) {
    assert.equal(FP4_VALUES[c], fp4Pos[c] / 12);
    assert.ok(Object.is(FP4_VALUES[c + 8], -fp4Pos[c] / 12));
  }
  for (let c = 0; c < 16; c++) assert.equal(INT4_VALUES[c], (c - 8) / 7);
  // codeTable returns a copy: writing to it does not change the library's table.
  const t = codeTable("fp4");
  t[3] = 99;
  assert.equal(codeTable("fp4")[3], 1);
});

Deno.test("nearestCode: argmin of |x - v| (ties to the smaller index) on random x", () => {
  const u = uniforms(7);
  for (const format of ["nf4", "fp4", "int4"] as const) {
    const table = codeTable(format);
    for (let k = 0; k < 20_000; k++) {
      const x = 2 * u() - 1;
      // Brute force: sort indices by (distance, index).
      const order = [...table.keys()].sort((a, b) =>
        Math.abs(x - table[a]) - Math.abs(x - table[b]) || a - b
      );
      assert.equal(nearestCode(table, x), order[0], `${format} x=${x}`);
    }
  }
});

Deno.test("nearestCode: endpoints, exact ties and the unused int4 code", () => {
  const nf4 = codeTable("nf4");
  const fp4 = codeTable("fp4");
  const int4 = codeTable("int4");
  assert.equal(nearestCode(nf4, 1), 15);
  assert.equal(nearestCode(nf4, -1), 0);
  assert.equal(nearestCode(nf4, 0), 7);
  assert.equal(nearestCode(fp4, 1), 3);
  assert.equal(nearestCode(fp4, -1), 11);
  assert.equal(nearestCode(fp4, 0), 0); // +0 (code 0) wins the tie with -0 (code 8)
  assert.equal(nearestCode(int4, 1), 15);
  assert.equal(nearestCode(int4, -1), 1); // never code 0 (-8/7)
  // The midpoint of two f32 values is exact in float64, so these are true ties.
  for (let c = 0; c < 15; c++) assert.equal(nearestCode(nf4, (nf4[c] + nf4[c + 1]) / 2), c);
  assert.equal(nearestCode(int4, (int4[8] + int4[9]) / 2), 8);
  for (let k = 0; k < 1000; k++) assert.notEqual(nearestCode(int4, -1 + k / 500), 0);
});

Deno.test("codeSearch: the same code as nearestCode on random x, ties, neighbours of ties and ends", () => {
  const u = uniforms(11);
  const f64 = new Float64Array(1), bits = new BigInt64Array(f64.buffer);
  const step = (x: number, k: number) => { // x moved by k float64 ulps
    if (x === 0) return k * Number.MIN_VALUE;
    f64[0] = x;
    bits[0] += BigInt(x > 0 ? k : -k);
    return f64[0];
  };
  for (const format of ["nf4", "fp4", "int4"] as const) {
    const table = codeTable(format);
    const search = codeSearch(table);
    const xs: number[] = [0, -0, 1, -1, 1.25, -1.25, 3, -3, 1e-30, -1e-30];
    for (let k = 0; k < 200_000; k++) xs.push(2 * u() - 1);
    for (let a = 0; a < 16; a++) {
      xs.push(table[a]);
      for (let b = 0; b < 16; b++) {
        const mid = (table[a] + table[b]) / 2;
        for (let k = -3; k <= 3; k++) xs.push(step(mid, k));
      }
    }
    for (let j = 0; j <= 512; j++) { // grid edges and their neighbours
      const e = -1 + (2 * j) / 512;
      for (let k = -2; k <= 2; k++) xs.push(step(e, k));
    }
    for (const x of xs) assert.equal(search(x), nearestCode(table, x), `${format} x=${x}`);
  }
});
