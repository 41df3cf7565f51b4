// Error study: the statistics on a hand-computed case, and NF4 beating FP4 and int4 on
// normally distributed weights (what NF4 is designed for) at the same block size.
import assert from "node:assert/strict";
import { errorStats, quantizationError } from "../../lib/quant/mod.ts";
import { randn } from "../../lib/quant/rng.ts";

Deno.test("errorStats: hand-computed values", () => {
  const s = errorStats(new Float32Array([1, 2, 3, 4]), new Float32Array([1, 2, 3, 5]));
  assert.equal(s.rmse, 0.5); // sqrt(1/4)
  assert.equal(s.maxAbsError, 1);
  assert.ok(Math.abs(s.sqnrDb - 10 * Math.log10(30)) < 1e-12); // Σw² = 30, Σe² = 1
  assert.equal(errorStats(new Float32Array([1, -2]), new Float32Array([1, -2])).sqnrDb, Infinity);
  assert.throws(() => errorStats(new Float32Array(2), new Float32Array(3)), /lengths/);
});

Deno.test("error: NF4 < int4 and FP4 in RMSE on N(0, 1), block 64 and 256, five seeds", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const w = randn(256 * 256, seed);
    for (const blockSize of [64, 256]) {
      const nf4 = quantizationError(w, [256, 256], "nf4", { blockSize });
      const fp4 = quantizationError(w, [256, 256], "fp4", { blockSize });
      const int4 = quantizationError(w, [256, 256], "int4", { blockSize });
      assert.equal(nf4.bitsPerParameter, fp4.bitsPerParameter);
      assert.ok(nf4.rmse < fp4.rmse && nf4.rmse < int4.rmse, `seed ${seed} bs ${blockSize}`);
      assert.ok(nf4.sqnrDb > fp4.sqnrDb && nf4.sqnrDb > int4.sqnrDb);
      // Sanity: NF4 at block 64 on N(0,1) measures RMSE ≈ 0.092 (SQNR ≈ 20.7 dB).
      if (blockSize === 64) assert.ok(nf4.rmse > 0.08 && nf4.rmse < 0.1, `${nf4.rmse}`);
    }
  }
});

Deno.test("error: more bits, less error (f16 < int8-row < nf4), double quant costs little", () => {
  const w = randn(128 * 512, 7);
  const shape = [128, 512];
  const f16 = quantizationError(w, shape, "f16");
  const int8 = quantizationError(w, shape, "int8-row");
  const nf4 = quantizationError(w, shape, "nf4");
  const nf4dq = quantizationError(w, shape, "nf4", { doubleQuant: true });
  assert.ok(f16.rmse < int8.rmse && int8.rmse < nf4.rmse);
  assert.ok(nf4dq.bitsPerParameter < nf4.bitsPerParameter);
  assert.ok(nf4dq.rmse < nf4.rmse * 1.01, `${nf4dq.rmse} vs ${nf4.rmse}`); // < 1% worse
  assert.equal(quantizationError(w, shape, "f32").rmse, 0);
});
