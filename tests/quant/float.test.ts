// f32/f16/bf16 containers: rounding error bounds, overflow and bad-input errors.
import assert from "node:assert/strict";
import { F32Weight, quantizeBF16, quantizeF16 } from "../../lib/quant/mod.ts";
import { randn } from "../../lib/quant/rng.ts";

Deno.test("quantizeF16/BF16: relative error within half an ulp (2^-11 and 2^-8)", () => {
  // N(0, 1) weights are normal numbers in both formats (|w| > 2^-14 almost surely except a
  // few tiny ones), so round-to-nearest gives |w - ŵ| <= 2^-(p+1) |w|, p = 10 or 7
  // fraction bits; below 2^-14 f16 is subnormal and the bound is absolute 2^-25.
  const w = randn(4096, 21);
  const f16 = quantizeF16(w, [64, 64]).dequantize();
  const bf16 = quantizeBF16(w, [64, 64]).dequantize();
  for (let i = 0; i < w.length; i++) {
    assert.ok(Math.abs(w[i] - f16[i]) <= Math.max(Math.abs(w[i]) * 2 ** -11, 2 ** -25));
    assert.ok(Math.abs(w[i] - bf16[i]) <= Math.abs(w[i]) * 2 ** -8);
  }
});

Deno.test("quantizeF16: max finite kept, overflow and NaN rejected with the index", () => {
  const ok = quantizeF16(new Float32Array([65504, -65504, 65519]), [3]).dequantize();
  assert.deepEqual([...ok], [65504, -65504, 65504]);
  assert.throws(
    () => quantizeF16(new Float32Array([1, 70000]), [2]),
    { message: "quantizeF16: weight 1 (70000) overflows f16" },
  );
  assert.throws(() => quantizeF16(new Float32Array([1, 2, NaN]), [3]), {
    message: "quantizeF16: weight 2 is NaN",
  });
  assert.throws(() => quantizeBF16(new Float32Array([Infinity]), [1]), {
    message: "quantizeBF16: weight 0 is Infinity",
  });
  assert.throws(() => quantizeBF16(new Float32Array([3.4028234663852886e38]), [1]), /overflows/);
});

Deno.test("F32Weight: a copy, 32 bits per parameter", () => {
  const w = randn(10, 1);
  const q = new F32Weight(w, [2, 5]);
  w[0] = 123;
  assert.notEqual(q.dequantize()[0], 123);
  assert.equal(q.bytes, 40);
  assert.equal(q.bitsPerParameter, 32);
});
