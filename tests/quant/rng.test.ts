// The seeded PRNG used by the error studies: reproducible, and its normals look N(0, 1).
import assert from "node:assert/strict";
import { randn, uniforms } from "../../lib/quant/rng.ts";

Deno.test("rng: same seed same stream, other seed other stream, uniforms in [0, 1)", () => {
  const a = uniforms(42);
  const b = uniforms(42);
  const c = uniforms(43);
  let differ = 0;
  for (let i = 0; i < 10_000; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
    if (x !== c()) differ++;
  }
  assert.ok(differ > 9_900);
  assert.deepEqual(randn(7, 1), randn(7, 1)); // odd n works and is reproducible
});

Deno.test("rng: randn has mean 0 and variance std^2 (within 5 standard errors)", () => {
  const n = 200_000;
  for (const std of [1, 0.02]) {
    const x = randn(n, 9, std);
    let s = 0;
    let s2 = 0;
    for (const v of x) {
      s += v;
      s2 += v * v;
    }
    const mean = s / n;
    const variance = s2 / n - mean * mean;
    // Standard error of the mean: std/sqrt(n); of the variance: std^2 sqrt(2/n).
    assert.ok(Math.abs(mean) < (5 * std) / Math.sqrt(n), `mean ${mean}`);
    assert.ok(Math.abs(variance / (std * std) - 1) < 5 * Math.sqrt(2 / n), `var ${variance}`);
  }
});
