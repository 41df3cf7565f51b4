// Double quantization of absmax constants: codes against a float64 reference, the stated
// error bound (half an int8 step of each block's residual range), and its effect on NF4.
import assert from "node:assert/strict";
import { doubleQuantize, quantizeNF4 } from "../../lib/quant/mod.ts";
import { randn } from "../../lib/quant/rng.ts";

// Real absmax constants: those of N(0, 1) weights in blocks of 64 (values around 2.4).
function realAbsmax(n: number, seed: number): Float32Array {
  return quantizeNF4(randn(n * 64, seed), [n, 64]).absmax!;
}

Deno.test("doubleQuantize: mean, scales and codes match the float64 reference", () => {
  const a = realAbsmax(1000, 1); // 3 full blocks of 256 and a ragged one of 232
  const dq = doubleQuantize(a);
  let sum = 0;
  for (const v of a) sum += v;
  assert.equal(dq.mean[0], Math.fround(sum / a.length));
  const m = dq.mean[0];
  assert.equal(dq.scales.length, 4);
  for (let b = 0; b < 4; b++) {
    const block = [...a.subarray(b * 256, (b + 1) * 256)];
    const s = Math.fround(Math.max(...block.map((v) => Math.abs(v - m))));
    assert.equal(dq.scales[b], s);
    block.forEach((v, j) => {
      const x = ((v - m) * 127) / s;
      assert.equal(dq.codes[b * 256 + j], Math.sign(x) * Math.floor(Math.abs(x) + 0.5) + 0);
    });
  }
  assert.equal(dq.bytes, 1000 + 4 * 4 + 4);
});

Deno.test("doubleQuantize: each constant within scale/254 of the original", () => {
  for (const seed of [2, 3, 4]) {
    const a = realAbsmax(777, seed);
    const dq = doubleQuantize(a);
    const back = dq.dequantize();
    for (let i = 0; i < a.length; i++) {
      const s = dq.scales[Math.floor(i / 256)];
      // Half a step of s/127, plus f32 rounding of the result (~2.4 * 2^-24 < 1e-6).
      assert.ok(Math.abs(back[i] - a[i]) <= s / 254 + 1e-6, `i=${i}`);
    }
  }
});

Deno.test("doubleQuantize: zeros, equal constants, other block sizes, bad input", () => {
  assert.deepEqual([...doubleQuantize(new Float32Array(300)).dequantize()], new Array(300).fill(0));
  assert.deepEqual(
    [...doubleQuantize(new Float32Array(10).fill(0.75)).dequantize()],
    new Array(10).fill(0.75),
  );
  const a = realAbsmax(100, 5);
  const dq = doubleQuantize(a, 16);
  assert.equal(dq.scales.length, 7);
  const back = dq.dequantize();
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(back[i] - a[i]) <= dq.scales[Math.floor(i / 16)] / 254 + 1e-6);
  }
  assert.throws(() => doubleQuantize(a, 0), /block size 0 must be an integer >= 1/);
  assert.throws(() => doubleQuantize(new Float32Array([1, -2])), /absmax 1 is -2/);
});

Deno.test("NF4 with double quantization: same codes, values off by at most the absmax error", () => {
  const w = randn(64 * 600, 6);
  const plain = quantizeNF4(w, [600, 64]);
  const dq = quantizeNF4(w, [600, 64], { doubleQuant: true });
  assert.equal(dq.absmax, null);
  assert.deepEqual(dq.packed, plain.packed);
  const a = plain.absmaxF32();
  const a2 = dq.absmaxF32();
  const d = plain.dequantize();
  const d2 = dq.dequantize();
  for (let i = 0; i < w.length; i++) {
    const b = Math.floor(i / 64);
    // |table[c]| <= 1, so the value moves by at most |Δabsmax|, plus f32 rounding.
    assert.ok(Math.abs(d[i] - d2[i]) <= Math.abs(a[b] - a2[b]) + 1e-6);
  }
});
