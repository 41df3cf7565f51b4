/**
 * Float formats: f32 (the baseline) and f16 / bf16 (16-bit patterns in a Uint16Array), each
 * with its container, packing and the two decoder twins.
 *
 * Words (`data`), element i = n·K + k of the row-major weight W [N, K]:
 * - f32: the f32 bits, one per word.
 * - f16 / bf16: two per word, element 2w in the low half of word w.
 *
 * No side arrays. Both decoders are exact (f16 and bf16 widen to f32 without rounding); the WGSL
 * widens by hand, so `shader-f16` is not needed.
 *
 * @module
 */

import { checkFinite, checkShape } from "../check.ts";
import {
  bf16BitsToF32,
  f16BitsToF32,
  fromBf16Bits,
  fromF16Bits,
  toBf16Bits,
  toF16Bits,
} from "../f16.ts";
import { pack16 } from "../pack.ts";
import type { QuantizedWeight } from "../weight.ts";
import { F32_WEIGHT } from "../../backend/webgpu/kernels/qmatmul.ts";
import {
  type Decoder,
  type KernelLayout,
  NO_SIDE_ARRAYS,
  type PackedWeight,
  plainLayout,
  type QuantFormatSpec,
  unsupportedContainer,
} from "./format.ts";

/** A weight kept as f32: 32 bits per parameter, the baseline for comparisons. */
export class F32Weight implements QuantizedWeight {
  /** Always "f32". */
  readonly format = "f32" as const;
  /** Logical shape. */
  readonly shape: readonly number[];
  /** Number of weights. */
  readonly numel: number;
  /** A copy of the weights: Float32Array [numel]. */
  readonly data: Float32Array;

  /** Copies `weights` (Float32Array [numel]) with the given shape. */
  constructor(weights: Float32Array, shape: readonly number[]) {
    this.numel = checkShape("quantizeF32", shape, weights.length);
    this.shape = [...shape];
    this.data = weights.slice();
  }

  /** Bytes held: 4 per weight. */
  get bytes(): number {
    return this.data.byteLength;
  }

  /** 32. */
  get bitsPerParameter(): number {
    return (this.bytes * 8) / this.numel;
  }

  /** A copy of the weights: Float32Array [numel]. */
  dequantize(): Float32Array {
    return this.data.slice();
  }
}

/** A weight kept as f16 or bf16 bits. */
export class F16Weight implements QuantizedWeight {
  /** "f16" or "bf16". */
  readonly format: "f16" | "bf16";
  /** Logical shape. */
  readonly shape: readonly number[];
  /** Number of weights. */
  readonly numel: number;
  /** The 16-bit patterns: Uint16Array [numel]. */
  readonly bits: Uint16Array;

  /** Wraps existing bits (Uint16Array [numel]); see {@link quantizeF16} to build one. */
  constructor(format: "f16" | "bf16", bits: Uint16Array, shape: readonly number[]) {
    this.numel = checkShape(`F16Weight(${format})`, shape, bits.length);
    this.format = format;
    this.shape = [...shape];
    this.bits = bits;
  }

  /** Bytes held: 2 per weight. */
  get bytes(): number {
    return this.bits.byteLength;
  }

  /** 16. */
  get bitsPerParameter(): number {
    return (this.bytes * 8) / this.numel;
  }

  /** The weights as f32 (exact): Float32Array [numel]. */
  dequantize(): Float32Array {
    return this.format === "f16" ? fromF16Bits(this.bits) : fromBf16Bits(this.bits);
  }
}

/**
 * Rounds weights to f16 (ties to even). Throws on NaN/Infinity and on finite weights beyond
 * the f16 range (|w| > 65504 after rounding), which would silently become Infinity.
 *
 * @param weights Float32Array [numel]
 */
export function quantizeF16(weights: Float32Array, shape: readonly number[]): F16Weight {
  return quantize16("quantizeF16", "f16", weights, shape);
}

/**
 * Rounds weights to bf16 (ties to even). Throws on NaN/Infinity and on weights that round
 * past bf16's largest finite value.
 *
 * @param weights Float32Array [numel]
 */
export function quantizeBF16(weights: Float32Array, shape: readonly number[]): F16Weight {
  return quantize16("quantizeBF16", "bf16", weights, shape);
}

function quantize16(
  fn: string,
  format: "f16" | "bf16",
  weights: Float32Array,
  shape: readonly number[],
): F16Weight {
  checkShape(fn, shape, weights.length);
  checkFinite(fn, weights);
  const bits = format === "f16" ? toF16Bits(weights) : toBf16Bits(weights);
  const expMask = format === "f16" ? 0x7c00 : 0x7f80; // all-ones exponent = Inf
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & expMask) === expMask) {
      throw new Error(`${fn}: weight ${i} (${weights[i]}) overflows ${format}`);
    }
  }
  return new F16Weight(format, bits, shape);
}

// ---------------------------------------------------------------------------------------------
// f32: the bits as they are.

/** f32: the baseline, 32 bits per weight. */
export const f32Format: QuantFormatSpec<F32Weight> = {
  name: "f32",
  title: "f32, the unquantized baseline",
  table: null,
  bitsPerWeight: () => 32,
  quantize: (weights, shape) => new F32Weight(weights, shape),
  pack(q: QuantizedWeight): PackedWeight {
    if (!(q instanceof F32Weight)) throw unsupportedContainer(q);
    const data = new Uint32Array(q.data.buffer, q.data.byteOffset, q.data.length);
    return { layout: plainLayout(q), arrays: { data, ...NO_SIDE_ARRAYS } };
  },
  decoder(p: PackedWeight): Decoder {
    const { data } = p.arrays;
    const f = new Float32Array(data.buffer, data.byteOffset, data.length);
    return (i0, n, out) => out.set(f.subarray(i0, i0 + n));
  },
  bindings: () => 1,
  wgsl: (_: KernelLayout, b0: number) => F32_WEIGHT.decodeWgsl(b0),
};

// ---------------------------------------------------------------------------------------------
// f16 / bf16: two 16-bit patterns per word.

// The WGSL `h2f` body: 16-bit pattern h -> f32, exact (f16 subnormals included).
const H2F: Record<"f16" | "bf16", string> = {
  bf16: `return bitcast<f32>(h << 16u);`,
  f16: `
  let sgn = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 31u;
  let m = h & 1023u;
  if (e == 0u) { // ±0 or subnormal: m · 2^-24, exact in f32
    let v = f32(m) * 5.9604644775390625e-8;
    return select(v, -v, sgn != 0u);
  }
  if (e == 31u) { return bitcast<f32>(sgn | 0x7f800000u | (m << 13u)); }
  return bitcast<f32>(sgn | ((e + 112u) << 23u) | (m << 13u));`,
};

function half(
  format: "f16" | "bf16",
  title: string,
  quantize: (weights: Float32Array, shape: readonly number[]) => F16Weight,
): QuantFormatSpec<F16Weight> {
  const conv = format === "f16" ? f16BitsToF32 : bf16BitsToF32;
  return {
    name: format,
    title,
    table: null,
    bitsPerWeight: () => 16,
    quantize: (weights, shape) => quantize(weights, shape),
    pack(q: QuantizedWeight): PackedWeight {
      if (!(q instanceof F16Weight) || q.format !== format) throw unsupportedContainer(q);
      return { layout: plainLayout(q), arrays: { data: pack16(q.bits), ...NO_SIDE_ARRAYS } };
    },
    decoder(p: PackedWeight): Decoder {
      const { data } = p.arrays;
      return (i0, n, out) => {
        for (let j = 0; j < n; j++) {
          const i = i0 + j;
          out[j] = conv((data[i >>> 1] >>> ((i & 1) * 16)) & 0xffff);
        }
      };
    },
    bindings: () => 1,
    wgsl: (_: KernelLayout, b0: number) =>
      `@group(0) @binding(${b0}) var<storage, read> QW: array<u32>;
fn h2f(h: u32) -> f32 {${H2F[format]}
}
fn wsetup(t: u32) {}
fn wval(i: u32, n: u32) -> f32 { return h2f((QW[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }
fn wload8(i0: u32, n: u32) -> array<f32, 8> {
  var o: array<f32, 8>;
  for (var j = 0u; j < 4u; j++) {
    let w = QW[(i0 >> 1u) + j];
    o[2u * j] = h2f(w & 0xffffu);
    o[2u * j + 1u] = h2f(w >> 16u);
  }
  return o;
}
fn wload4(i0: u32, n: u32) -> vec4<f32> {
  let w0 = QW[i0 >> 1u];
  let w1 = QW[(i0 >> 1u) + 1u];
  return vec4(h2f(w0 & 0xffffu), h2f(w0 >> 16u), h2f(w1 & 0xffffu), h2f(w1 >> 16u));
}`,
  };
}

/** f16 (IEEE half, round to nearest even): 16 bits per weight. */
export const f16Format: QuantFormatSpec<F16Weight> = half(
  "f16",
  "f16, IEEE half precision",
  quantizeF16,
);

/** bf16 (bfloat16, round to nearest even): 16 bits per weight. */
export const bf16Format: QuantFormatSpec<F16Weight> = half(
  "bf16",
  "bf16, bfloat16",
  quantizeBF16,
);
