/**
 * int8 absmax formats, per tensor ("int8") or per row ("int8-row", vector-wise as LLM.int8()),
 * with the container, packing and the two decoder twins.
 *
 * q = round(w * 127 / absmax) (half away from zero), in -127..127; w ≈ q * absmax / 127.
 * absmax is kept as f32 (one per tensor or one per row). A row of zeros has absmax 0: its
 * codes are 0 and it dequantizes to zeros (no division by zero).
 *
 * Words (`data`): four codes per word, element 4w+j in byte j (two's complement). Side array:
 * `absmax` [1] or [N]. Both decoders compute f32(f32(q · absmax) / 127); WGSL allows its division
 * to be 2.5 ulp off, the one place where the twins may differ.
 *
 * @module
 */

import { checkFinite, checkShape, roundHalfAway } from "../check.ts";
import { packInt8 } from "../pack.ts";
import type { QuantizedWeight } from "../weight.ts";
import {
  type Decoder,
  type KernelLayout,
  NO_SIDE_ARRAYS,
  type PackedWeight,
  plainLayout,
  type QuantFormatSpec,
  unsupportedContainer,
} from "./format.ts";

/** An int8 absmax-quantized weight. */
export class Int8Weight implements QuantizedWeight {
  /** "int8" (one scale) or "int8-row" (one scale per row). */
  readonly format: "int8" | "int8-row";
  /** Logical shape. */
  readonly shape: readonly number[];
  /** Number of weights. */
  readonly numel: number;
  /** Codes in -127..127: Int8Array [numel]. */
  readonly codes: Int8Array;
  /**
   * absmax per scale group: Float32Array [1] for "int8", [rows] for "int8-row", where
   * cols = shape[last] and rows = numel / cols.
   */
  readonly absmax: Float32Array;

  /** Wraps existing codes and scales; see {@link quantizeInt8} to build one. */
  constructor(
    format: "int8" | "int8-row",
    codes: Int8Array,
    absmax: Float32Array,
    shape: readonly number[],
  ) {
    this.numel = checkShape("Int8Weight", shape, codes.length);
    this.format = format;
    this.shape = [...shape];
    this.codes = codes;
    this.absmax = absmax;
  }

  /** Elements sharing one scale: numel for "int8", the row length for "int8-row". */
  get groupSize(): number {
    return this.format === "int8" ? this.numel : this.shape[this.shape.length - 1];
  }

  /** Bytes held: codes + f32 scales. */
  get bytes(): number {
    return this.codes.byteLength + this.absmax.byteLength;
  }

  /** `bytes * 8 / numel` (just over 8). */
  get bitsPerParameter(): number {
    return (this.bytes * 8) / this.numel;
  }

  /** w = q * absmax / 127: Float32Array [numel]. */
  dequantize(): Float32Array {
    const out = new Float32Array(this.numel);
    const g = this.groupSize;
    for (let i = 0; i < this.numel; i++) {
      out[i] = (this.codes[i] * this.absmax[Math.floor(i / g)]) / 127;
    }
    return out;
  }
}

/**
 * int8 absmax quantization with one scale for the whole tensor.
 *
 * @param weights Float32Array [numel]
 */
export function quantizeInt8(weights: Float32Array, shape: readonly number[]): Int8Weight {
  checkShape("quantizeInt8", shape, weights.length);
  checkFinite("quantizeInt8", weights);
  const codes = new Int8Array(weights.length);
  const absmax = new Float32Array(1);
  absmax[0] = quantizeGroup(weights, codes, 0, weights.length);
  return new Int8Weight("int8", codes, absmax, shape);
}

/**
 * int8 absmax quantization with one scale per row (the last dimension is a row).
 *
 * @param weights Float32Array [rows, cols] (any leading dims are folded into rows)
 */
export function quantizeInt8Rows(weights: Float32Array, shape: readonly number[]): Int8Weight {
  checkShape("quantizeInt8Rows", shape, weights.length);
  checkFinite("quantizeInt8Rows", weights);
  const cols = shape[shape.length - 1];
  const rows = weights.length / cols;
  const codes = new Int8Array(weights.length);
  const absmax = new Float32Array(rows);
  for (let r = 0; r < rows; r++) absmax[r] = quantizeGroup(weights, codes, r * cols, cols);
  return new Int8Weight("int8-row", codes, absmax, shape);
}

// Quantizes weights[start, start + n) into codes; returns the group's absmax.
function quantizeGroup(w: Float32Array, codes: Int8Array, start: number, n: number): number {
  let absmax = 0;
  for (let i = start; i < start + n; i++) absmax = Math.max(absmax, Math.abs(w[i]));
  if (absmax === 0) return 0; // codes stay 0
  for (let i = start; i < start + n; i++) codes[i] = roundHalfAway((w[i] * 127) / absmax);
  return absmax;
}

// ---------------------------------------------------------------------------------------------
// The format specs.

const fr = Math.fround;

function int8Spec(
  format: "int8" | "int8-row",
  title: string,
  quantize: (weights: Float32Array, shape: readonly number[]) => Int8Weight,
): QuantFormatSpec<Int8Weight> {
  const perRow = format === "int8-row";
  const a = perRow ? "QS[n]" : "QS[0]"; // the WGSL scale of row n
  return {
    name: format,
    title,
    table: null,
    bitsPerWeight: () => 8,
    quantize: (weights, shape) => quantize(weights, shape),
    pack(q: QuantizedWeight): PackedWeight {
      if (!(q instanceof Int8Weight) || q.format !== format) throw unsupportedContainer(q);
      return {
        layout: plainLayout(q),
        arrays: { ...NO_SIDE_ARRAYS, data: packInt8(q.codes), absmax: q.absmax },
      };
    },
    decoder(p: PackedWeight): Decoder {
      const { K } = p.layout;
      const { data, absmax } = p.arrays;
      return (i0, n, out) => {
        for (let j = 0; j < n; j++) {
          const i = i0 + j;
          const q = (data[i >>> 2] << (24 - 8 * (i & 3))) >> 24; // sign-extended byte
          const a = absmax![perRow ? Math.floor(i / K) : 0];
          out[j] = fr(fr(q * a) / 127); // WGSL: f32(q) * a / 127.0
        }
      };
    },
    bindings: () => 2,
    wgsl: (_: KernelLayout, b0: number) =>
      `@group(0) @binding(${b0}) var<storage, read> QW: array<u32>;
@group(0) @binding(${b0 + 1}) var<storage, read> QS: array<f32>;
fn sbyte(w: u32, j: u32) -> f32 { return f32(bitcast<i32>(w << (24u - 8u * j)) >> 24u); }
fn wsetup(t: u32) {}
fn wval(i: u32, n: u32) -> f32 { return sbyte(QW[i >> 2u], i & 3u) * ${a} / 127.0; }
fn wload8(i0: u32, n: u32) -> array<f32, 8> {
  var o: array<f32, 8>;
  let a = ${a};
  for (var j = 0u; j < 8u; j++) { o[j] = sbyte(QW[(i0 >> 2u) + j / 4u], j & 3u) * a / 127.0; }
  return o;
}
fn wload4(i0: u32, n: u32) -> vec4<f32> {
  let w = QW[i0 >> 2u];
  let a = ${a};
  return vec4(sbyte(w, 0u) * a / 127.0, sbyte(w, 1u) * a / 127.0, sbyte(w, 2u) * a / 127.0,
              sbyte(w, 3u) * a / 127.0);
}`,
  };
}

/** int8 with one absmax for the whole tensor: 8 bits per weight. */
export const int8Format: QuantFormatSpec<Int8Weight> = int8Spec(
  "int8",
  "int8 absmax, one scale per tensor",
  quantizeInt8,
);

/** int8 with one absmax per row (LLM.int8()'s vector-wise scales): 8 + 32 / K bits per weight. */
export const int8RowFormat: QuantFormatSpec<Int8Weight> = int8Spec(
  "int8-row",
  "int8 absmax, one scale per row",
  quantizeInt8Rows,
);
