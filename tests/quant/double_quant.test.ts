// Double quantization of the absmax constants, bitsandbytes' scheme: the dynamic map against its
// definition in float64, codes and reconstruction against a float64 reference of the scheme
// written from its description, and its effect on NF4 with heavy-tailed weights and outliers.
import assert from "node:assert/strict";
import {
  buildDynamicMap,
  doubleQuantize,
  dynamicMap,
  isStandardDynamicMap,
  nearestInMap,
  quantizeNF4,
} from "../../lib/quant/mod.ts";
import { randn } from "../../lib/quant/rng.ts";
import { Rng } from "../../lib/rng.ts";

// create_dynamic_map(signed=True) from its description, in float64: for i = 0 … 6 the midpoints
// of 2^i equal steps from 0.1 to 1, times ±10^(i-6); then 0 and 1.
function mapRef(): number[] {
  const v: number[] = [0, 1];
  for (let i = 0; i < 7; i++) {
    const n = 2 ** i;
    for (let j = 0; j < n; j++) {
      const mid = 0.1 + 0.9 * (j + 0.5) / n;
      v.push(mid * 10 ** (i - 6), -mid * 10 ** (i - 6));
    }
  }
  return v.sort((a, b) => a - b);
}

// The scheme in float64 from its description: offset = mean (stored as f32); residuals
// r = f32(a - offset); per 256: s = max |r|; q = argmin_j |map[j] - r/s| (first on ties);
// back = f32(f32(map[q]·s) + offset).
function dqRef(a: Float32Array, map: Float32Array, bs = 256) {
  const f = Math.fround;
  let sum = 0;
  for (const v of a) sum += v;
  const off = f(sum / a.length);
  const r = Array.from(a, (v) => f(v - off));
  const codes: number[] = [], scales: number[] = [], back: number[] = [];
  for (let b = 0; b * bs < a.length; b++) {
    const blk = r.slice(b * bs, (b + 1) * bs);
    const s = Math.max(...blk.map(Math.abs));
    scales.push(s);
    for (const x of blk) {
      let best = 0;
      for (let j = 1; j < 256; j++) {
        if (Math.abs(map[j] - x / s) < Math.abs(map[best] - x / s)) best = j;
      }
      if (s === 0) best = map.indexOf(0);
      codes.push(best);
      back.push(f(f(map[best] * s) + off));
    }
  }
  return { off, codes, scales, back };
}

// Real absmax constants: those of N(0, 1) weights in blocks of 64 (values around 2.4).
function realAbsmax(n: number, seed: number): Float32Array {
  return quantizeNF4(randn(n * 64, seed), [n, 64]).absmax!;
}

Deno.test("dynamic map: 256 ascending values within f32 rounding of the definition", () => {
  const m = dynamicMap(), ref = mapRef();
  assert.equal(m.length, 256);
  for (let i = 0; i < 256; i++) {
    // linspace, midpoint and the power of ten each round in f32: a few ulp (u = 2^-24).
    assert.ok(Math.abs(m[i] - ref[i]) <= 4 * 2 ** -24 * Math.abs(ref[i]), `map[${i}] ${m[i]}`);
    if (i > 0) assert.ok(m[i] > m[i - 1], `ascending at ${i}`);
  }
  assert.equal(m[255], 1);
  assert.ok(m.includes(0));
  assert.ok(isStandardDynamicMap(buildDynamicMap()));
  const other = dynamicMap();
  other[3] += 1e-7;
  assert.ok(!isStandardDynamicMap(other));
  // nearestInMap: ties go to the smaller index, values outside the range to the ends.
  assert.equal(nearestInMap(m, (m[10] + m[11]) / 2), 10);
  assert.equal(nearestInMap(m, -5), 0);
  assert.equal(nearestInMap(m, 5), 255);
});

Deno.test("doubleQuantize: offset, nested absmax, codes and values match the float64 reference", () => {
  const rng = new Rng(3);
  for (const [n, bs] of [[1000, 256], [77, 16], [5, 256], [300, 1]]) {
    const a = realAbsmax(n, rng.int(1000));
    if (n >= 300) a[17] = 40 * a[17]; // one outlier block
    const dq = doubleQuantize(a, bs);
    const ref = dqRef(a, dynamicMap(), bs);
    assert.equal(dq.offset[0], ref.off);
    assert.deepEqual([...dq.scales], ref.scales.map(Math.fround));
    assert.deepEqual([...dq.codes], ref.codes);
    assert.deepEqual([...dq.dequantize()], ref.back);
    assert.equal(dq.bytes, n + 4 * Math.ceil(n / bs) + 4);
  }
});

Deno.test("doubleQuantize: zeros, equal constants, bad input", () => {
  assert.deepEqual([...doubleQuantize(new Float32Array(300)).dequantize()], new Array(300).fill(0));
  assert.deepEqual(
    [...doubleQuantize(new Float32Array(10).fill(0.75)).dequantize()],
    new Array(10).fill(0.75),
  );
  assert.throws(() => doubleQuantize(realAbsmax(4, 1), 0), /block size 0 must be an integer >= 1/);
  assert.throws(() => doubleQuantize(new Float32Array([1, -2])), /absmax 1 is -2/);
});

// Student-t with ν degrees of freedom: z / √(χ²_ν / ν).
function studentT(n: number, nu: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => {
    let c = 0;
    for (let k = 0; k < nu; k++) c += rng.normal() ** 2;
    return rng.normal() / Math.sqrt(c / nu);
  });
}

function rmsErr(w: Float32Array, d: Float32Array): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += (w[i] - d[i]) ** 2;
  return Math.sqrt(s / w.length);
}

Deno.test("NF4 + double quantization on heavy tails: error within 2% of plain NF4, no dead blocks", () => {
  const n = 1563 * 64;
  const outl = randn(n, 8);
  const rng = new Rng(9);
  for (let k = 0; k < n / 10_000; k++) outl[rng.int(n)] = rng.uniform() < 0.5 ? -100 : 100;
  // Measured with these draws (RMS weight error over plain NF4's): +0.79% (outliers), +0.64%
  // (Student-t, ν = 2); the removed int8-absmax variant gave +22% and +19%. 2% leaves room for
  // other draws and fails the int8 variant on both.
  const cases = [["0.01% 100σ outliers", outl], ["Student-t ν=2", studentT(n, 2, 13)]] as const;
  for (const [name, w] of cases) {
    const plain = quantizeNF4(w, [1563, 64]);
    const dq = quantizeNF4(w, [1563, 64], { doubleQuant: true });
    assert.deepEqual(dq.packed, plain.packed); // the 4-bit codes do not depend on it
    const ratio = rmsErr(w, dq.dequantize()) / rmsErr(w, plain.dequantize());
    assert.ok(ratio >= 1 - 1e-3 && ratio <= 1.02, `${name}: error ratio ${ratio}`);
    // The reference scheme gives the same constants, hence the same weights.
    assert.deepEqual([...dq.absmaxF32()], dqRef(plain.absmax!, dynamicMap()).back);
    // No block with weights comes back all zeros.
    const back = dq.absmaxF32();
    for (let b = 0; b < back.length; b++) {
      if (plain.absmax![b] > 0) assert.ok(back[b] > 0, `${name}: block ${b} lost`);
    }
  }
});
