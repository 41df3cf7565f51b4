// 4-bit blockwise quantization (NF4, FP4, int4) against a float64 reference written here from
// the published tables: per-block absmax, nearest code of w/absmax (ties: smaller index),
// dequantized value fround(table[c] * absmax). Codes and values are compared exactly.
import assert from "node:assert/strict";
import {
  type Blockwise4Weight,
  type Format4,
  FP4_VALUES,
  INT4_VALUES,
  NF4_VALUES,
  quantizeBlockwise4,
  quantizeFP4,
  quantizeInt4,
  quantizeNF4,
} from "../../lib/quant/mod.ts";
import { randn } from "../../lib/quant/rng.ts";

// The tables as f32 numbers (what the library multiplies with).
const TABLES: Record<Format4, number[]> = {
  nf4: NF4_VALUES.map(Math.fround),
  fp4: FP4_VALUES.map(Math.fround),
  int4: INT4_VALUES.map(Math.fround),
};

function reference(w: Float32Array, format: Format4, blockSize: number) {
  const t = TABLES[format];
  const numBlocks = Math.ceil(w.length / blockSize);
  const absmax: number[] = [];
  const codes: number[] = [];
  const values: number[] = [];
  for (let b = 0; b < numBlocks; b++) {
    const block = [...w.subarray(b * blockSize, (b + 1) * blockSize)];
    const m = Math.max(...block.map(Math.abs));
    absmax.push(m);
    for (const x of block) {
      let best = 0;
      for (let c = 1; c < 16; c++) {
        if (Math.abs(x / m - t[c]) < Math.abs(x / m - t[best])) best = c;
      }
      const c = m === 0 ? t.indexOf(0) : best;
      codes.push(c);
      values.push(Math.fround(t[c] * m));
    }
  }
  return { absmax, codes, values };
}

const FORMATS: Format4[] = ["nf4", "fp4", "int4"];

Deno.test("blockwise: codes, absmax and values match the reference (several block sizes)", () => {
  const cases: [number[], number][] = [
    [[64, 64], 64],
    [[7, 33], 64], // 231 elements: ragged last block
    [[3, 100], 32],
    [[5, 77], 72], // a multiple of 8 that is not a power of two
    [[2, 2100], 4096], // one ragged block of the largest size
    [[1000], 128],
  ];
  let seed = 100;
  for (const [shape, blockSize] of cases) {
    const n = shape.reduce((a, b) => a * b);
    const w = randn(n, seed++, 0.05);
    for (const format of FORMATS) {
      const q = quantizeBlockwise4(w, shape, format, { blockSize });
      const ref = reference(w, format, blockSize);
      assert.equal(q.numBlocks, Math.ceil(n / blockSize));
      assert.deepEqual([...q.absmax!], ref.absmax);
      for (let i = 0; i < n; i++) assert.equal(q.code(i), ref.codes[i], `${format} code ${i}`);
      const d = q.dequantize();
      assert.equal(d.length, n);
      assert.deepEqual(q.shape, shape);
      assert.deepEqual([...d], ref.values);
      // Padding elements hold the code of 0.0.
      const zero = TABLES[format].indexOf(0);
      for (let i = n; i < q.packed.length * 8; i++) assert.equal(q.code(i), zero);
    }
  }
});

Deno.test("blockwise: error per weight at most half the widest code gap times absmax", () => {
  const w = randn(64 * 50, 3);
  for (const format of FORMATS) {
    const t = [...TABLES[format]].filter((v) => v >= -1).sort((a, b) => a - b);
    let maxGap = 0;
    for (let c = 1; c < t.length; c++) maxGap = Math.max(maxGap, t[c] - t[c - 1]);
    const q = quantizeBlockwise4(w, [50, 64], format);
    const d = q.dequantize();
    for (let i = 0; i < w.length; i++) {
      const m = q.absmax![Math.floor(i / 64)];
      // 1e-6 relative slack for the f32 rounding of table[c] * absmax.
      assert.ok(Math.abs(w[i] - d[i]) <= (maxGap / 2) * m * (1 + 1e-6) + 1e-7, `${format} ${i}`);
    }
  }
});

Deno.test("blockwise: byte layout has the even element in the low nibble", () => {
  const q: Blockwise4Weight = quantizeNF4(randn(200, 8), [200]);
  const bytes = q.codesAsBytes();
  assert.equal(bytes.length, q.packed.length * 4);
  for (let b = 0; b < bytes.length; b++) {
    assert.equal(bytes[b] & 15, q.code(2 * b));
    assert.equal(bytes[b] >> 4, q.code(2 * b + 1));
  }
});

Deno.test("blockwise: zero blocks give absmax 0 and dequantize to exact zeros", () => {
  const w = randn(64 * 4, 9);
  w.fill(0, 64, 128); // block 1
  for (const format of FORMATS) {
    const q = quantizeBlockwise4(w, [4, 64], format);
    assert.equal(q.absmax![1], 0);
    const d = q.dequantize();
    for (let i = 64; i < 128; i++) assert.ok(Object.is(d[i], 0), `${format} ${i}: ${d[i]}`);
    assert.ok(d.every(Number.isFinite));
    const z = quantizeBlockwise4(new Float32Array(100), [100], format, { doubleQuant: true });
    assert.ok(z.dequantize().every((v) => v === 0));
  }
});

Deno.test("blockwise: bad weights and block sizes give clear errors", () => {
  const w = randn(128, 10);
  w[17] = NaN;
  assert.throws(() => quantizeNF4(w, [128]), { message: "quantizeNF4: weight 17 is NaN" });
  w[17] = 0;
  w[3] = -Infinity;
  assert.throws(() => quantizeFP4(w, [128]), { message: "quantizeFP4: weight 3 is -Infinity" });
  w[3] = 0;
  for (const blockSize of [0, 16, 31, 36, 64.5, 4097, 8192, NaN]) {
    assert.throws(
      () => quantizeInt4(w, [128], { blockSize }),
      { message: `quantizeInt4: block size ${blockSize} must be a multiple of 8 in [32, 4096]` },
    );
  }
  assert.throws(() => quantizeNF4(w, [129]), /quantizeNF4: shape \[129\] has 129 elements/);
});
