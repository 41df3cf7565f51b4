// int8 absmax, per tensor and per row, against a float64 reference computed here.
import assert from "node:assert/strict";
import { quantizeInt8, quantizeInt8Rows } from "../../lib/quant/mod.ts";
import { randn } from "../../lib/quant/rng.ts";

const rows = 37;
const cols = 53;
// Rows with very different scales (0.01 .. 10), so per-row scaling matters.
function weights(seed: number): Float32Array {
  const w = randn(rows * cols, seed);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) w[r * cols + c] *= 10 ** (-2 + (3 * r) / (rows - 1));
  }
  return w;
}
const refRound = (x: number) => Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
const absmaxOf = (w: Float32Array, a: number, b: number) => {
  let m = 0;
  for (let i = a; i < b; i++) m = Math.max(m, Math.abs(w[i]));
  return m;
};

Deno.test("int8 per tensor: codes, scale and error bound", () => {
  for (const seed of [1, 2, 3]) {
    const w = weights(seed);
    const q = quantizeInt8(w, [rows, cols]);
    const m = absmaxOf(w, 0, w.length);
    assert.deepEqual([...q.absmax], [m]);
    for (let i = 0; i < w.length; i++) assert.equal(q.codes[i], refRound((w[i] * 127) / m) + 0);
    const d = q.dequantize();
    // Half a step, absmax/254, plus f32 rounding of the product (relative 2^-24).
    for (let i = 0; i < w.length; i++) {
      assert.ok(Math.abs(w[i] - d[i]) <= (m / 254) * (1 + 1e-6), `i=${i}`);
    }
    assert.equal(q.bytes, rows * cols + 4);
  }
});

Deno.test("int8 per row: one scale per row, tighter error than per tensor", () => {
  for (const seed of [4, 5, 6]) {
    const w = weights(seed);
    const qr = quantizeInt8Rows(w, [rows, cols]);
    const qt = quantizeInt8(w, [rows, cols]);
    assert.equal(qr.absmax.length, rows);
    const d = qr.dequantize();
    let errRow = 0;
    let errTensor = 0;
    const dt = qt.dequantize();
    for (let r = 0; r < rows; r++) {
      const m = absmaxOf(w, r * cols, (r + 1) * cols);
      assert.equal(qr.absmax[r], m);
      let hasFull = false;
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        assert.equal(qr.codes[i], refRound((w[i] * 127) / m) + 0);
        assert.ok(Math.abs(w[i] - d[i]) <= (m / 254) * (1 + 1e-6));
        if (Math.abs(qr.codes[i]) === 127) hasFull = true; // the absmax element
        errRow += (w[i] - d[i]) ** 2;
        errTensor += (w[i] - dt[i]) ** 2;
      }
      assert.ok(hasFull);
    }
    // Total squared error is dominated by the largest rows, so the gain is modest (~9x here).
    assert.ok(errRow < errTensor / 4, `${errRow} vs ${errTensor}`);
    assert.equal(qr.bytes, rows * cols + 4 * rows);
  }
});

Deno.test("int8: zero rows dequantize to zeros; bad input rejected", () => {
  const w = weights(7);
  w.fill(0, cols, 2 * cols); // row 1 all zeros
  const q = quantizeInt8Rows(w, [rows, cols]);
  assert.equal(q.absmax[1], 0);
  const d = q.dequantize();
  for (let c = 0; c < cols; c++) assert.equal(d[cols + c], 0);
  assert.ok(d.every(Number.isFinite));
  assert.deepEqual([...quantizeInt8(new Float32Array(5), [5]).dequantize()], [0, 0, 0, 0, 0]);
  w[17] = NaN;
  assert.throws(() => quantizeInt8(w, [rows, cols]), { message: "quantizeInt8: weight 17 is NaN" });
  assert.throws(() => quantizeInt8Rows(w, [rows, cols + 1]), /shape/);
});
