import assert from "node:assert/strict";
import { Rng } from "../../lib/mod.ts";
import { encodeFloats, roundToOddF32 } from "../../lib/io/encode_float.ts";
import { tensorView } from "../../lib/io/safetensors.ts";
import { fromBf16Bits, fromF16Bits } from "../../lib/quant/f16.ts";
import { rneTo } from "../ref.ts";

const F16 = (x: number) => rneTo(x, 10, -14);
const BF16 = (x: number) => rneTo(x, 7, -126);

function decode(dtype: "F32" | "F16" | "BF16", values: number[]): number[] {
  const t = encodeFloats(dtype, [values.length], Float64Array.from(values));
  const v = tensorView(t);
  return Array.from(
    dtype === "F32"
      ? v as Float32Array
      : dtype === "F16"
      ? fromF16Bits(v as Uint16Array)
      : fromBf16Bits(v as Uint16Array),
  );
}

Deno.test("encodeFloats: one rounding from float64, no double-rounding error at 16-bit ties", () => {
  // Just above an f16 / bf16 tie: plain f32 rounding would land ON the tie and round to even
  // (down); the correct rounding of the exact value is up.
  const above16 = 1 + 2 ** -11 + 2 ** -40, below16 = 1 + 2 ** -11 - 2 ** -40;
  assert.equal(Math.fround(above16), 1 + 2 ** -11); // the trap
  assert.deepEqual(decode("F16", [above16, below16, -above16]), [
    1 + 2 ** -10,
    1,
    -(1 + 2 ** -10),
  ]);
  const aboveB = 1 + 2 ** -8 + 2 ** -40;
  assert.deepEqual(decode("BF16", [aboveB, -aboveB]), [1 + 2 ** -7, -(1 + 2 ** -7)]);
  // Exact ties still go to even.
  assert.deepEqual(decode("F16", [1 + 2 ** -11, 1 + 3 * 2 ** -11]), [1, 1 + 2 ** -9]);
  // Random float64 values (normal, tiny and f16-subnormal magnitudes) against rneTo.
  const rng = new Rng(4);
  const xs = Array.from({ length: 3000 }, (_, i) => rng.normal() * 10 ** ((i % 7) - 5));
  assert.deepEqual(decode("F16", xs), xs.map(F16));
  assert.deepEqual(decode("BF16", xs), xs.map(BF16));
  assert.deepEqual(decode("F32", xs), xs.map(Math.fround));
});

Deno.test("roundToOddF32: exact values stay; others go to the odd neighbour on the right side", () => {
  const rng = new Rng(9);
  for (let i = 0; i < 2000; i++) {
    const x = rng.normal() * 2 ** (rng.int(40) - 20);
    const r = roundToOddF32(x);
    const lo = Math.fround(x) <= x ? Math.fround(x) : nextDown(Math.fround(x));
    const hi = lo === x ? lo : nextUp(lo);
    assert.ok(r === lo || r === hi, `${x} → ${r} not in [${lo}, ${hi}]`);
    if (lo !== x) assert.equal(bits(r) & 1, 1, `${x} → ${r} is even`);
  }
  assert.equal(roundToOddF32(1.5), 1.5);
  assert.equal(roundToOddF32(1e-300), 2 ** -149);
  assert.equal(roundToOddF32(-1e-300), -(2 ** -149));
});

const F = new Float32Array(1), U = new Uint32Array(F.buffer);
function bits(x: number): number {
  F[0] = x;
  return U[0];
}
function nextUp(x: number): number { // x is an f32
  F[0] = x;
  U[0] += x >= 0 ? 1 : -1;
  return F[0];
}
function nextDown(x: number): number {
  F[0] = x;
  U[0] += x > 0 ? -1 : 1;
  return F[0];
}
