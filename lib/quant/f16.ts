/**
 * f32 <-> f16 (IEEE 754 binary16) and f32 <-> bf16 (bfloat16) conversion, on raw bits.
 *
 * Rounding is round-to-nearest, ties-to-even. Finite values too large for the target
 * overflow to ±Infinity; values below half the smallest f16 subnormal (2^-25) flush to ±0;
 * f16 subnormals are produced and read exactly. NaN stays NaN (its top payload bits are
 * kept; a payload that would vanish becomes the quiet bit so it never turns into Infinity).
 *
 * The array functions work on the bits of the typed arrays directly, so NaN payloads survive
 * f16 -> f32 -> f16 bit for bit. The scalar functions go through a JS number, where the
 * engine may canonicalize a NaN's payload (it stays a NaN).
 *
 * @module
 */

// Scratch cells to move a value between its f32 and u32 views.
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * Converts the 32 bits of an f32 to the 16 bits of the nearest f16 (ties to even).
 *
 * @param x f32 bits as an unsigned 32-bit integer.
 * @returns f16 bits in 0..0xffff.
 */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff; // f32 biased exponent (bias 127)
  const mant = x & 0x7fffff; // 23 mantissa bits
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00; // ±Infinity
    const m = mant >>> 13; // keep the top 10 payload bits
    return sign | 0x7c00 | (m === 0 ? 0x200 : m); // NaN, never Infinity
  }
  const e = exp - 112; // f16 biased exponent (bias 15): 127 - 15 = 112
  if (e >= 31) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // f16 subnormal (or zero): value = m * 2^(exp - 150), in units of 2^-24 that is
    // m * 2^(e - 14), i.e. m shifted right by 14 - e (14..24).
    if (e < -10) return sign; // below 2^-25: rounds to ±0
    const m = mant | 0x800000; // 24 bits with the implicit leading 1
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++; // may carry into the exponent: fine
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff; // the 13 bits dropped
  // Ties to even. A carry out of the mantissa bumps the exponent; 0x7bff + 1 = 0x7c00 = Inf.
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/**
 * Converts f16 bits to the bits of the equal f32 (exact: every f16 is an f32).
 *
 * @param h f16 bits in 0..0xffff.
 * @returns f32 bits as an unsigned 32-bit integer.
 */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // Inf or NaN (payload kept)
  if (exp === 0) {
    if (mant === 0) return sign >>> 0; // ±0
    // Subnormal: value = mant * 2^-24. With p the leading bit of mant, that is
    // 2^(p - 24) * 1.f, so the f32 biased exponent is p - 24 + 127 = p + 103.
    const p = 31 - Math.clz32(mant);
    return (sign | ((p + 103) << 23) | ((mant ^ (1 << p)) << (23 - p))) >>> 0;
  }
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

/**
 * Converts the 32 bits of an f32 to the 16 bits of the nearest bf16 (ties to even).
 * bf16 keeps f32's 8-bit exponent, so only values within half a bf16 ulp of f32's max
 * overflow to Infinity.
 *
 * @param x f32 bits as an unsigned 32-bit integer.
 * @returns bf16 bits in 0..0xffff.
 */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) {
    const h = x >>> 16; // NaN: keep the top payload bits, or set the quiet bit if none are left
    return (h & 0x7f) === 0 ? h | 0x40 : h;
  }
  // Add 0x7fff plus the lowest kept bit, then truncate: round to nearest, ties to even.
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Converts bf16 bits to the bits of the equal f32 (exact).
 *
 * @param h bf16 bits in 0..0xffff.
 * @returns f32 bits as an unsigned 32-bit integer.
 */
export function bf16BitsToF32Bits(h: number): number {
  return (h << 16) >>> 0;
}

/**
 * Rounds a number to f32, then to the nearest f16, and returns its bits.
 *
 * @example
 * ```ts
 * f16BitsToF32(f32ToF16Bits(3.14159)); // 3.140625
 * ```
 */
export function f32ToF16Bits(x: number): number {
  F32[0] = x;
  return f32BitsToF16Bits(U32[0]);
}

/** Returns the value (a JS number, exactly representable in f32) of f16 bits `h`. */
export function f16BitsToF32(h: number): number {
  U32[0] = f16BitsToF32Bits(h);
  return F32[0];
}

/** Rounds a number to f32, then to the nearest bf16, and returns its bits. */
export function f32ToBf16Bits(x: number): number {
  F32[0] = x;
  return f32BitsToBf16Bits(U32[0]);
}

/** Returns the value (a JS number, exactly representable in f32) of bf16 bits `h`. */
export function bf16BitsToF32(h: number): number {
  U32[0] = bf16BitsToF32Bits(h);
  return F32[0];
}

/** Converts each f32 to f16 bits: Float32Array [n] -> Uint16Array [n]. */
export function toF16Bits(a: Float32Array): Uint16Array {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length); // [n] f32 bits
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** Converts f16 bits back to f32: Uint16Array [n] -> Float32Array [n] (exact). */
export function fromF16Bits(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  const bits = new Uint32Array(out.buffer); // [n] f32 bits
  for (let i = 0; i < h.length; i++) bits[i] = f16BitsToF32Bits(h[i]);
  return out;
}

/** Converts each f32 to bf16 bits: Float32Array [n] -> Uint16Array [n]. */
export function toBf16Bits(a: Float32Array): Uint16Array {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length); // [n] f32 bits
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32BitsToBf16Bits(bits[i]);
  return out;
}

/** Converts bf16 bits back to f32: Uint16Array [n] -> Float32Array [n] (exact). */
export function fromBf16Bits(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  const bits = new Uint32Array(out.buffer); // [n] f32 bits
  for (let i = 0; i < h.length; i++) bits[i] = bf16BitsToF32Bits(h[i]);
  return out;
}
