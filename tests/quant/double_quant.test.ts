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

// The scheme from its description: offset = mean (float64, stored as f32); residuals
// r = f32(a - offset); per 256: s = max |r|; x = f32(r · f32(1/s)) (bitsandbytes multiplies by
// the reciprocal); q = argmin_j f32|x - map[j]| (torch.argmin: first on ties);
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
    const inv = f(1 / s);
    for (const v of blk) {
      const x = f(v * inv), dist = (j: number) => f(Math.abs(f(x - map[j])));
      let best = 0;
      for (let j = 1; j < 256; j++) if (dist(j) < dist(best)) best = j;
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

// The negative half of bitsandbytes' create_dynamic_map(signed=True) as bitsandbytes returns it
// (f32 values printed in full, ascending; copied in public ports of its kernels). The map is
// these 127, 0, their negatives in reverse order, and 1.
const BNB_NEGATIVE = [
  -0.992968738079071,
  -0.9789062738418579,
  -0.96484375,
  -0.9507812261581421,
  -0.936718761920929,
  -0.922656238079071,
  -0.9085937738418579,
  -0.89453125,
  -0.8804687261581421,
  -0.866406261920929,
  -0.852343738079071,
  -0.8382812738418579,
  -0.82421875,
  -0.8101562261581421,
  -0.796093761920929,
  -0.782031238079071,
  -0.7679687738418579,
  -0.75390625,
  -0.7398437261581421,
  -0.725781261920929,
  -0.7117187976837158,
  -0.6976562738418579,
  -0.68359375,
  -0.6695312261581421,
  -0.655468761920929,
  -0.6414062976837158,
  -0.6273437738418579,
  -0.61328125,
  -0.5992187261581421,
  -0.585156261920929,
  -0.5710937976837158,
  -0.5570312738418579,
  -0.54296875,
  -0.5289062261581421,
  -0.5148437023162842,
  -0.500781238079071,
  -0.48671871423721313,
  -0.47265625,
  -0.4585937261581421,
  -0.44453126192092896,
  -0.43046873807907104,
  -0.4164062440395355,
  -0.40234375,
  -0.3882812261581421,
  -0.37421876192092896,
  -0.36015623807907104,
  -0.3460937440395355,
  -0.33203125,
  -0.3179687261581421,
  -0.30390626192092896,
  -0.28984373807907104,
  -0.2757812738418579,
  -0.26171875,
  -0.24765624105930328,
  -0.23359374701976776,
  -0.21953125298023224,
  -0.20546874403953552,
  -0.19140625,
  -0.17734375596046448,
  -0.16328124701976776,
  -0.14921875298023224,
  -0.13515624403953552,
  -0.12109375,
  -0.10703125596046448,
  -0.09859374910593033,
  -0.09578125923871994,
  -0.09296875447034836,
  -0.09015624970197678,
  -0.08734375238418579,
  -0.08453124761581421,
  -0.08171875774860382,
  -0.07890625298023224,
  -0.07609374821186066,
  -0.07328125089406967,
  -0.07046874612569809,
  -0.0676562562584877,
  -0.06484375149011612,
  -0.062031250447034836,
  -0.05921875312924385,
  -0.05640624836087227,
  -0.053593751043081284,
  -0.05078125,
  -0.047968748956918716,
  -0.04515625163912773,
  -0.04234374687075615,
  -0.039531249552965164,
  -0.03671875223517418,
  -0.033906251192092896,
  -0.031093750149011612,
  -0.028281250968575478,
  -0.025468749925494194,
  -0.02265625074505806,
  -0.019843751564621925,
  -0.017031250521540642,
  -0.014218750409781933,
  -0.011406250298023224,
  -0.009718749672174454,
  -0.009156249463558197,
  -0.008593750186264515,
  -0.008031249977648258,
  -0.0074687497690320015,
  -0.006906250026077032,
  -0.006343749817460775,
  -0.005781250074505806,
  -0.0052187503315508366,
  -0.0046562496572732925,
  -0.004093749914318323,
  -0.0035312497057020664,
  -0.002968749962747097,
  -0.002406249986961484,
  -0.001843750011175871,
  -0.001281249918974936,
  -0.0009437500848434865,
  -0.0008312499849125743,
  -0.0007187500596046448,
  -0.0006062500760890543,
  -0.000493750034365803,
  -0.0003812500217463821,
  -0.0002687500382307917,
  -0.00015625001105945557,
  -8.874999912222847e-05,
  -6.625000241911039e-05,
  -4.374999844003469e-05,
  -2.1249998098937795e-05,
  -7.749999895168003e-06,
  -3.250000190746505e-06,
  -5.500000384017767e-07,
];

Deno.test("dynamic map: bitsandbytes' published table, value for value", () => {
  const want = [...BNB_NEGATIVE, 0, ...BNB_NEGATIVE.map((v) => -v).reverse(), 1];
  assert.equal(want.length, 256);
  assert.deepEqual([...dynamicMap()], want);
});

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
