// f16/bf16 conversion against independent references: a float64 decoder of the bit fields, a
// float64 round-to-nearest-even reference, and Math.f16round where this Deno has it.
// All comparisons are exact (Object.is): conversion is fully specified, no tolerance needed.
import assert from "node:assert/strict";
import {
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  fromBf16Bits,
  fromF16Bits,
  toBf16Bits,
  toF16Bits,
} from "../../lib/quant/mod.ts";
import { uniforms } from "../../lib/quant/rng.ts";

// Value of f16 bits from the IEEE 754 definition, in float64.
function decodeF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// Round x (a float64) to a binary format with `mant` fraction bits, minimum normal exponent
// `emin` and maximum exponent `emax`, ties to even, overflow to Infinity.
function roundRef(x: number, mant: number, emin: number, emax: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a === Infinity) return x;
  let e = emin;
  while (e < emax && 2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (e - mant);
  const q = a / ulp; // exact: division by a power of two
  const fl = Math.floor(q);
  const r = q - fl;
  const n = r > 0.5 || (r === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  const v = n * ulp;
  const out = v > (2 - 2 ** -mant) * 2 ** emax ? Infinity : v;
  return x < 0 ? -out : out;
}
const f16Ref = (x: number) => roundRef(x, 10, -14, 15);
const bf16Ref = (x: number) => roundRef(x, 7, -126, 127);

// Random f32 values: uniform random bits with the exponent field drawn from [lo, hi].
function randomF32(n: number, seed: number, lo: number, hi: number): Float32Array {
  const u = uniforms(seed);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const exp = lo + Math.floor(u() * (hi - lo + 1));
    const sign = u() < 0.5 ? 0x80000000 : 0;
    bits[i] = (sign | (exp << 23) | Math.floor(u() * 0x800000)) >>> 0;
  }
  return new Float32Array(bits.buffer);
}

Deno.test("f16: 3.14159 becomes 3.140625 (bits 0x4248)", () => {
  assert.equal(f32ToF16Bits(3.14159), 0x4248);
  assert.equal(f16BitsToF32(0x4248), 3.140625);
  assert.equal(bf16BitsToF32(f32ToBf16Bits(3.14159)), 3.140625);
});

Deno.test("f16: all 65536 bit patterns decode like the float64 reference and round-trip", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const values = fromF16Bits(all);
  for (let h = 0; h < 65536; h++) {
    const ref = decodeF16(h);
    if (Number.isNaN(ref)) assert.ok(Number.isNaN(values[h]), `0x${h.toString(16)} not NaN`);
    else assert.ok(Object.is(values[h], ref), `0x${h.toString(16)}: ${values[h]} vs ${ref}`);
  }
  // Array path: bit-exact, NaN payloads included.
  assert.deepEqual(toF16Bits(values), all);
  // Scalar path: exact for non-NaN; NaN stays NaN.
  for (let h = 0; h < 65536; h++) {
    const back = f32ToF16Bits(f16BitsToF32(h));
    if (Number.isNaN(values[h])) assert.ok(Number.isNaN(f16BitsToF32(back)));
    else assert.equal(back, h);
  }
});

Deno.test("f16: random f32 values round like the float64 reference (ties to even)", () => {
  const xs = randomF32(200_000, 1, 95, 145); // 2^-32 .. 2^18: zero, subnormal, normal, overflow
  const got = fromF16Bits(toF16Bits(xs));
  for (let i = 0; i < xs.length; i++) {
    assert.ok(Object.is(got[i], f16Ref(xs[i])), `${xs[i]}: ${got[i]} vs ${f16Ref(xs[i])}`);
  }
});

Deno.test("f16: exact midpoints go to the even neighbour; just off them go to the nearer", () => {
  const u = uniforms(2);
  const cases: number[] = [65504, 65520, 65519.99, 2 ** -25, 3 * 2 ** -26, 2 ** -24 * 1.5];
  for (let k = 0; k < 20_000; k++) {
    const h = Math.floor(u() * 0x7bff); // positive finite, not the max
    const mid = (decodeF16(h) + decodeF16(h + 1)) / 2; // exact in f32 (12 significant bits)
    cases.push(mid, -mid, Math.fround(mid * (1 + 2 ** -20)), Math.fround(mid * (1 - 2 ** -20)));
  }
  for (const x of cases) {
    const xf = Math.fround(x);
    const got = f16BitsToF32(f32ToF16Bits(xf));
    assert.ok(Object.is(got, f16Ref(xf)), `${xf}: ${got} vs ${f16Ref(xf)}`);
  }
  // Spot checks: 65520 is the tie between 65504 (odd mantissa) and 2^16 -> Infinity.
  assert.equal(f16BitsToF32(f32ToF16Bits(65520)), Infinity);
  assert.equal(f16BitsToF32(f32ToF16Bits(65519.99)), 65504);
  assert.equal(f32ToF16Bits(2 ** -25), 0); // tie between 0 and 2^-24: to even (0)
  assert.equal(f32ToF16Bits(3 * 2 ** -25), 2); // tie between 1 and 2 ulps: to even (2)
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie above 1.0: to even (1.0)
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie: to even mantissa 2
  assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
  assert.ok(Object.is(f16BitsToF32(f32ToF16Bits(-1e-30)), -0));
});

Deno.test({
  name: "f16: agrees with Math.f16round on f32 inputs",
  ignore: typeof (Math as { f16round?: unknown }).f16round !== "function",
  fn() {
    const f16round = (Math as unknown as { f16round(x: number): number }).f16round;
    const xs = randomF32(200_000, 3, 90, 150);
    const got = fromF16Bits(toF16Bits(xs));
    for (let i = 0; i < xs.length; i++) {
      assert.ok(Object.is(got[i], f16round(xs[i])), `${xs[i]}: ${got[i]} vs ${f16round(xs[i])}`);
    }
    // And on all midpoints between consecutive f16 values (the ties).
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (decodeF16(h) + decodeF16(h + 1)) / 2;
      assert.ok(Object.is(f16BitsToF32(f32ToF16Bits(mid)), f16round(mid)), `mid ${mid}`);
    }
  },
});

Deno.test("bf16: all 65536 bit patterns round-trip; random f32 values match the reference", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const values = fromBf16Bits(all);
  assert.deepEqual(toBf16Bits(values), all); // bit-exact, NaN payloads included
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    assert.equal(Number.isNaN(values[h]), isNaN);
  }
  const xs = randomF32(100_000, 4, 0, 254); // every finite exponent, subnormals included
  const got = fromBf16Bits(toBf16Bits(xs));
  for (let i = 0; i < xs.length; i++) {
    assert.ok(Object.is(got[i], bf16Ref(xs[i])), `${xs[i]}: ${got[i]} vs ${bf16Ref(xs[i])}`);
  }
});

Deno.test("bf16: ties to even, overflow to Infinity, NaN stays NaN", () => {
  const u = uniforms(5);
  for (let k = 0; k < 20_000; k++) {
    const h = Math.floor(u() * 0x7f7f);
    const mid = (bf16BitsToF32(h) + bf16BitsToF32(h + 1)) / 2; // exact in f32
    assert.ok(Object.is(bf16BitsToF32(f32ToBf16Bits(mid)), bf16Ref(mid)), `mid ${mid}`);
  }
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie: to even (1.0)
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie: to even
  assert.equal(bf16BitsToF32(f32ToBf16Bits(3.4028234663852886e38)), Infinity); // f32 max
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
});
