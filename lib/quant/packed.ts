/**
 * The device layout of a frozen weight W [N, K] (out × in, PyTorch Linear): every format as u32
 * words plus f32 side arrays, exactly the buffers a WGSL kernel binds, and the float32 decoder
 * that is the CPU twin of the WGSL one (`lib/backend/webgpu/kernels/qmatmul.ts`).
 *
 * Words (`data`), element i = n·K + k of the row-major weight:
 * - f32: the f32 bits, one per word.
 * - f16 / bf16: two per word, element 2w in the low half of word w.
 * - int8 / int8-row: four per word, element 4w+j in byte j (two's complement).
 * - nf4 / fp4 / int4: eight per word, element 8w+j in bits 4j..4j+3 (as `Blockwise4Weight`).
 *
 * Side arrays: `absmax` holds int8's scale ([1], or [N] per row) or the 4-bit blocks' absmax
 * ([numBlocks]); with double quantization (bitsandbytes' scheme, `double_quant.ts`) `dqCodes`
 * packs the 8-bit map indices four per word (index 4w+j in byte j), `dqScales` is
 * [offset, nested_absmax_0, …, nested_absmax_{S-1}] and `dqMap` the 256-entry f32 map.
 *
 * The decoder does each f32 operation of the kernel in the same order, rounding to f32 after
 * each step, so the CPU twin and the WGSL kernel agree bit for bit wherever the GPU rounds
 * correctly (everything except the division by 127 of int8, which WGSL allows to be 2.5 ulp
 * off).
 *
 * @module
 */

import { Blockwise4Weight } from "./blockwise.ts";
import { sharedTable } from "./codes.ts";
import { isStandardDynamicMap } from "./double_quant.ts";
import { bf16BitsToF32, f16BitsToF32 } from "./f16.ts";
import { F16Weight, F32Weight } from "./float.ts";
import { Int8Weight } from "./int8.ts";
import type { QuantFormat, QuantizedWeight } from "./weight.ts";

/** Everything a kernel needs to know about a packed weight, besides its arrays. */
export interface PackedLayout {
  /** Storage format. */
  readonly format: QuantFormat;
  /** Rows of W (outputs of `x · Wᵀ`). */
  readonly N: number;
  /** Columns of W (inputs of `x · Wᵀ`), the row length. */
  readonly K: number;
  /** 4-bit formats: weights per absmax block; 0 otherwise. */
  readonly blockSize: number;
  /** Double quantization: absmax constants per scale; 0 without. */
  readonly dqBlockSize: number;
}

/** The arrays of a packed weight (host side; on WebGPU each becomes one storage buffer). */
export interface PackedArrays {
  /** Codes or values as u32 words (see the module doc for each format). */
  readonly data: Uint32Array;
  /** int8: absmax [1] or [N]; 4-bit without double quantization: absmax [numBlocks]. */
  readonly absmax: Float32Array | null;
  /** Double quantization: 8-bit map indices, four per word, [⌈numBlocks / 4⌉]. */
  readonly dqCodes: Uint32Array | null;
  /** Double quantization: [offset, absmax_0, …, absmax_{S-1}], S = ⌈numBlocks / dqBlockSize⌉. */
  readonly dqScales: Float32Array | null;
  /** Double quantization: the 8-bit map [256] (usually the shared dynamic map). */
  readonly dqMap: Float32Array | null;
}

/** A layout together with its arrays. */
export interface PackedWeight {
  /** Format, shape and block sizes. */
  readonly layout: PackedLayout;
  /** The arrays. */
  readonly arrays: PackedArrays;
}

/** Packs bytes (int8 or uint8) four per u32 word, element 4w+j in byte j: Uint32Array [⌈n / 4⌉]. */
export function packInt8(codes: Int8Array | Uint8Array): Uint32Array {
  const out = new Uint32Array(Math.ceil(codes.length / 4));
  for (let i = 0; i < codes.length; i++) out[i >>> 2] |= (codes[i] & 0xff) << ((i & 3) * 8);
  return out;
}

/** Packs 16-bit patterns two per u32 word, element 2w in the low half: Uint32Array [⌈n / 2⌉]. */
export function pack16(bits: Uint16Array): Uint32Array {
  const out = new Uint32Array(Math.ceil(bits.length / 2));
  for (let i = 0; i < bits.length; i++) out[i >>> 1] |= bits[i] << ((i & 1) * 16);
  return out;
}

/**
 * Lays out a quantized 2-D weight [N, K] for a device. Arrays are packed copies (the f32 and
 * 4-bit words are shared with `q`, not copied: a frozen weight is never written).
 */
export function packWeight(q: QuantizedWeight): PackedWeight {
  if (q.shape.length !== 2 || q.shape[0] < 1 || q.shape[1] < 1) {
    throw new RangeError(
      `packWeight: weight shape [${q.shape.join(",")}] must be 2-D [out, in], both ≥ 1`,
    );
  }
  const [N, K] = q.shape;
  const base = { format: q.format, N, K, blockSize: 0, dqBlockSize: 0 };
  const none = { absmax: null, dqCodes: null, dqScales: null, dqMap: null };
  if (q instanceof F32Weight) {
    const data = new Uint32Array(q.data.buffer, q.data.byteOffset, q.data.length);
    return { layout: base, arrays: { data, ...none } };
  }
  if (q instanceof F16Weight) return { layout: base, arrays: { data: pack16(q.bits), ...none } };
  if (q instanceof Int8Weight) {
    return {
      layout: base,
      arrays: { ...none, data: packInt8(q.codes), absmax: q.absmax },
    };
  }
  if (q instanceof Blockwise4Weight) {
    const layout = { ...base, blockSize: q.blockSize, dqBlockSize: q.dq?.blockSize ?? 0 };
    if (!q.dq) {
      return {
        layout,
        arrays: { ...none, data: q.packed, absmax: q.absmax },
      };
    }
    const dqScales = new Float32Array(1 + q.dq.scales.length); // [offset, nested absmax…]
    dqScales[0] = q.dq.offset[0];
    dqScales.set(q.dq.scales, 1);
    const dqCodes = packInt8(q.dq.codes);
    return { layout, arrays: { data: q.packed, absmax: null, dqCodes, dqScales, dqMap: q.dq.map } };
  }
  throw new TypeError(`packWeight: unsupported weight container (format ${q.format})`);
}

/**
 * Bytes of the arrays: what a device holds for the weight (each array padded to 4 bytes). The
 * shared standard dynamic map is one buffer per device, not counted per weight.
 */
export function packedBytes(a: PackedArrays): number {
  const map = a.dqMap && !isStandardDynamicMap(a.dqMap) ? a.dqMap.byteLength : 0;
  return a.data.byteLength + (a.absmax?.byteLength ?? 0) + (a.dqCodes?.byteLength ?? 0) +
    (a.dqScales?.byteLength ?? 0) + map;
}

/**
 * The float32 decoder of a packed weight: `decode(i0, n, out)` writes elements i0 … i0+n-1 of
 * the row-major W (flat index i = row·K + col) into out[0 … n-1]. Twin of the WGSL `wval`.
 */
export type Decoder = (i0: number, n: number, out: Float32Array) => void;

const fr = Math.fround;

/** Builds the {@link Decoder} of a packed weight. */
export function makeDecoder(p: PackedWeight): Decoder {
  const { format, K, blockSize, dqBlockSize } = p.layout;
  const { data, absmax, dqCodes, dqScales, dqMap } = p.arrays;
  switch (format) {
    case "f32": {
      const f = new Float32Array(data.buffer, data.byteOffset, data.length);
      return (i0, n, out) => out.set(f.subarray(i0, i0 + n));
    }
    case "f16":
    case "bf16": {
      const conv = format === "f16" ? f16BitsToF32 : bf16BitsToF32;
      return (i0, n, out) => {
        for (let j = 0; j < n; j++) {
          const i = i0 + j;
          out[j] = conv((data[i >>> 1] >>> ((i & 1) * 16)) & 0xffff);
        }
      };
    }
    case "int8":
    case "int8-row": {
      const perRow = format === "int8-row";
      return (i0, n, out) => {
        for (let j = 0; j < n; j++) {
          const i = i0 + j;
          const q = (data[i >>> 2] << (24 - 8 * (i & 3))) >> 24; // sign-extended byte
          const a = absmax![perRow ? Math.floor(i / K) : 0];
          out[j] = fr(fr(q * a) / 127); // WGSL: f32(q) * a / 127.0
        }
      };
    }
    case "nf4":
    case "fp4":
    case "int4": {
      const table = sharedTable(format);
      // absmax of block b: stored, or rebuilt from double quantization in the kernel's steps.
      const amax = dqCodes
        ? (b: number) => {
          const q = (dqCodes[b >>> 2] >>> (8 * (b & 3))) & 255;
          const s = dqScales![1 + Math.floor(b / dqBlockSize)];
          return fr(fr(dqMap![q] * s) + dqScales![0]); // WGSL: QM[q] * s + offset
        }
        : (b: number) => absmax![b];
      return (i0, n, out) => {
        const end = i0 + n;
        for (let i = i0; i < end;) {
          const b = Math.floor(i / blockSize), a = amax(b); // one block at a time
          const stop = Math.min(end, (b + 1) * blockSize);
          // The f64 product is exact; the store rounds it to f32 once, as WGSL's f32 multiply.
          for (; i < stop; i++) out[i - i0] = table[(data[i >>> 3] >>> ((i & 7) * 4)) & 15] * a;
        }
      };
    }
    default:
      throw new TypeError(`makeDecoder: unknown format ${format}`);
  }
}
