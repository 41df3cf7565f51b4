/**
 * 4-bit blockwise absmax formats: NF4, FP4 and symmetric int4, with the container, packing, the
 * two decoder twins and the double-quantization hook (where a block's absmax comes from).
 *
 * The flat weights (row-major) are cut into blocks of `blockSize` consecutive elements; each
 * block keeps its absmax (f32) and each weight a 4-bit code c, the index of the table value
 * nearest to w / absmax (ties: smaller index; see `codes.ts`). Dequantized: table[c] * absmax.
 *
 * Block size: an integer multiple of 8 in [32, 4096] (default 64). Multiples of 8 keep every
 * u32 word of 8 codes inside one block, which is what a GPU kernel wants; bitsandbytes'
 * powers of two 32..4096 are all allowed.
 *
 * Ragged tails: when numel is not a multiple of blockSize, the last block is padded with
 * zeros (code of 0.0) up to blockSize. The padding is stored (and counted in `bytes`), never
 * returned: `dequantize()` gives exactly numel values in the original shape.
 *
 * A block of zeros has absmax 0: its codes are the code of 0.0 and it dequantizes to zeros.
 *
 * Storage for the GPU: `packed` is Uint32Array [numBlocks * blockSize / 8], element 8k+j in
 * bits 4j..4j+3 of word k; `absmax` is Float32Array [numBlocks] without double quantization,
 * otherwise `dq` holds bitsandbytes' double quantization (8-bit dynamic-map codes + f32 nested
 * absmax per 256 constants + f32 offset; `double_quant.ts`) and `absmaxF32()` rebuilds the f32
 * constants. `codesAsBytes()` gives the byte layout (low nibble = even element; bitsandbytes'
 * files put the even element in the high nibble: see `lib/io/bnb.ts`).
 *
 * Device layout: `data` is `packed` as it is (eight codes per word, element 8w+j in bits
 * 4j..4j+3); the side array is `absmax` [numBlocks], or with double quantization `dqCodes` (the
 * 8-bit map indices four per word, index 4w+j in byte j), `dqScales` [offset, nested_absmax_0, …,
 * nested_absmax_{S-1}] and `dqMap` (the 256-entry f32 map). Both decoders compute
 * f32(table[c] · absmax), the absmax rebuilt as f32(f32(map[q] · s) + offset).
 *
 * @module
 */

import { absmaxOf } from "../absmax.ts";
import { checkFinite, checkShape } from "../check.ts";
import {
  codeSearch,
  codeTable,
  type Format4,
  FP4_VALUES,
  INT4_VALUES,
  nearestCode,
  NF4_VALUES,
  sharedTable,
} from "../codes.ts";
import { type DoubleQuantAbsmax, doubleQuantize, DQ_BLOCK_SIZE } from "../double_quant.ts";
import { nibbleAt, nibblesToBytes, packInt8 } from "../pack.ts";
import type { QuantizedWeight } from "../weight.ts";
import {
  type Decoder,
  type KernelLayout,
  NO_SIDE_ARRAYS,
  type PackedArrays,
  type PackedWeight,
  packShape,
  type QuantFormatSpec,
  type QuantizeOptions,
  unsupportedContainer,
  wgslF32,
  type WgslOptions,
} from "./format.ts";

/** Default weights per block (QLoRA's 64). */
export const DEFAULT_BLOCK_SIZE = 64;

/** The quantizer's name per 4-bit format, as its errors name it. */
export const QUANTIZE_FN: Readonly<Record<Format4, string>> = Object.freeze({
  nf4: "quantizeNF4",
  fp4: "quantizeFP4",
  int4: "quantizeInt4",
});

/** Options of the 4-bit quantizers (the options of `quantize`). */
export type Blockwise4Options = QuantizeOptions;

/** A 4-bit blockwise-quantized weight (NF4, FP4 or int4). */
export class Blockwise4Weight implements QuantizedWeight {
  /** "nf4", "fp4" or "int4". */
  readonly format: Format4;
  /** Logical shape. */
  readonly shape: readonly number[];
  /** Number of weights (without padding). */
  readonly numel: number;
  /** Weights per absmax block. */
  readonly blockSize: number;
  /** Codes, 8 per word: Uint32Array [numBlocks * blockSize / 8]. */
  readonly packed: Uint32Array;
  /** Per-block absmax: Float32Array [numBlocks], or null when double-quantized. */
  readonly absmax: Float32Array | null;
  /** Double-quantized absmax, or null. */
  readonly dq: DoubleQuantAbsmax | null;

  /** Wraps existing arrays; see {@link quantizeNF4} and friends to build one. */
  constructor(
    format: Format4,
    shape: readonly number[],
    blockSize: number,
    packed: Uint32Array,
    absmax: Float32Array | null,
    dq: DoubleQuantAbsmax | null,
  ) {
    this.numel = shape.reduce((a, b) => a * b, 1);
    const numBlocks = Math.ceil(this.numel / blockSize);
    if (packed.length !== (numBlocks * blockSize) / 8) {
      throw new Error(
        `Blockwise4Weight: packed has ${packed.length} words, want ${(numBlocks * blockSize) / 8}`,
      );
    }
    if ((absmax === null) === (dq === null)) {
      throw new Error("Blockwise4Weight: give exactly one of absmax and dq");
    }
    if ((absmax ?? dq!).length !== numBlocks) {
      throw new Error(`Blockwise4Weight: want ${numBlocks} absmax constants`);
    }
    this.format = format;
    this.shape = [...shape];
    this.blockSize = blockSize;
    this.packed = packed;
    this.absmax = absmax;
    this.dq = dq;
  }

  /** Number of blocks, ceil(numel / blockSize). */
  get numBlocks(): number {
    return Math.ceil(this.numel / this.blockSize);
  }

  /** Bytes held: packed codes (with padding) + absmax (f32, or double-quantized). */
  get bytes(): number {
    return this.packed.byteLength + (this.absmax?.byteLength ?? this.dq!.bytes);
  }

  /** `bytes * 8 / numel`: 4.5 for NF4 at block 64, ≈ 4.127 with double quantization. */
  get bitsPerParameter(): number {
    return (this.bytes * 8) / this.numel;
  }

  /** The f32 code table of this format: Float32Array [16] (a copy; not counted in bytes). */
  codeTable(): Float32Array {
    return codeTable(this.format);
  }

  /** The per-block absmax as f32 (dequantized if double-quantized): Float32Array [numBlocks]. */
  absmaxF32(): Float32Array {
    return this.absmax ? this.absmax.slice() : this.dq!.dequantize();
  }

  /** The 4-bit code of element i (0..15). */
  code(i: number): number {
    return nibbleAt(this.packed, i);
  }

  /** The codes as bytes, low nibble = even element: Uint8Array [numBlocks * blockSize / 2]. */
  codesAsBytes(): Uint8Array {
    return nibblesToBytes(this.packed, this.packed.length * 8);
  }

  /** w = table[code] * absmax[block]: Float32Array [numel]. */
  dequantize(): Float32Array {
    const table = sharedTable(this.format);
    const absmax = this.absmaxF32();
    const out = new Float32Array(this.numel);
    for (let i = 0; i < this.numel; i++) {
      out[i] = table[nibbleAt(this.packed, i)] * absmax[Math.floor(i / this.blockSize)];
    }
    return out;
  }
}

/** Throws unless `blockSize` is an integer multiple of 8 in [32, 4096]. */
export function checkBlockSize(fn: string, blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < 32 || blockSize > 4096 || blockSize % 8 !== 0) {
    throw new Error(`${fn}: block size ${blockSize} must be a multiple of 8 in [32, 4096]`);
  }
}

/**
 * Blockwise 4-bit quantization with the given code table.
 *
 * @param weights Float32Array [numel], row-major
 */
export function quantizeBlockwise4(
  weights: Float32Array,
  shape: readonly number[],
  format: Format4,
  opts: Blockwise4Options = {},
): Blockwise4Weight {
  const fn = QUANTIZE_FN[format];
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  checkBlockSize(fn, blockSize);
  const numel = checkShape(fn, shape, weights.length);
  const table = sharedTable(format);
  const zeroCode = nearestCode(table, 0); // padding and zero blocks
  const search = searchOf(format); // = nearestCode(table, ·), faster
  const numBlocks = Math.ceil(numel / blockSize);
  const absmax = new Float32Array(numBlocks); // [numBlocks]
  const packed = new Uint32Array((numBlocks * blockSize) / 8); // [padded numel / 8]
  for (let b = 0; b < numBlocks; b++) {
    const start = b * blockSize;
    const end = Math.min(start + blockSize, numel);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(weights[i]));
    // NaN or ±Infinity in this block: name the first one (blocks go in order, so it is the
    // first of the whole tensor).
    if (!Number.isFinite(m)) checkFinite(fn, weights.subarray(0, end));
    absmax[b] = m;
    if (end - start === blockSize && m > 0) { // a whole block: eight codes per word
      for (let i = start; i < end; i += 8) {
        let word = 0;
        for (let j = 0; j < 8; j++) word |= search(weights[i + j] / m) << (4 * j);
        packed[i >>> 3] = word;
      }
      continue;
    }
    for (let i = start; i < start + blockSize; i++) {
      const c = i < end && m > 0 ? search(weights[i] / m) : zeroCode;
      packed[i >>> 3] |= c << ((i & 7) * 4);
    }
  }
  if (opts.doubleQuant) {
    const dq = doubleQuantize(absmax, opts.dqBlockSize);
    return new Blockwise4Weight(format, shape, blockSize, packed, null, dq);
  }
  return new Blockwise4Weight(format, shape, blockSize, packed, absmax, null);
}

/** The nearest-code search of each format, built once. */
const SEARCHES = new Map<Format4, (x: number) => number>();

function searchOf(format: Format4): (x: number) => number {
  let s = SEARCHES.get(format);
  if (!s) SEARCHES.set(format, s = codeSearch(sharedTable(format)));
  return s;
}

/** NF4 blockwise quantization (QLoRA). See {@link quantizeBlockwise4}. */
export function quantizeNF4(
  weights: Float32Array,
  shape: readonly number[],
  opts: Blockwise4Options = {},
): Blockwise4Weight {
  return quantizeBlockwise4(weights, shape, "nf4", opts);
}

/** FP4 (e2m1, bitsandbytes) blockwise quantization. See {@link quantizeBlockwise4}. */
export function quantizeFP4(
  weights: Float32Array,
  shape: readonly number[],
  opts: Blockwise4Options = {},
): Blockwise4Weight {
  return quantizeBlockwise4(weights, shape, "fp4", opts);
}

/** Symmetric int4 absmax blockwise quantization (codes -7..7, scale absmax / 7). */
export function quantizeInt4(
  weights: Float32Array,
  shape: readonly number[],
  opts: Blockwise4Options = {},
): Blockwise4Weight {
  return quantizeBlockwise4(weights, shape, "int4", opts);
}

// ---------------------------------------------------------------------------------------------
// Double quantization hook: where the absmax of block b comes from, stored or rebuilt from
// bitsandbytes' 8-bit codes, on the CPU and in WGSL (the same f32 steps).

// The CPU side is `absmaxOf` (`../absmax.ts`).

/** The WGSL bindings b0 + 1 … and `amax(b)` of a layout's absmax source. */
function absmaxWgsl(l: KernelLayout, b0: number): string {
  if (l.dqBlockSize > 0) {
    return `@group(0) @binding(${b0 + 1}) var<storage, read> QC: array<u32>;
@group(0) @binding(${b0 + 2}) var<storage, read> QD: array<f32>; // [offset, nested absmax…]
@group(0) @binding(${b0 + 3}) var<storage, read> QM: array<f32>; // the 8-bit map [256]
fn amax(b: u32) -> f32 {
  let q = (QC[b >> 2u] >> (8u * (b & 3u))) & 255u;
  return QM[q] * QD[1u + b / ${l.dqBlockSize}u] + QD[0];
}`;
  }
  return `@group(0) @binding(${b0 + 1}) var<storage, read> QS: array<f32>;
fn amax(b: u32) -> f32 { return QS[b]; }`;
}

// The 4-bit code table `CODE` and `wsetup` (see WgslOptions): a private array, or one copy in
// workgroup memory that thread 0 fills.
function codeTableWgsl(code: ArrayLike<number>, where: "private" | "workgroup"): string {
  const values = Array.from(code, wgslF32);
  if (where === "private") {
    return `var<private> CODE: array<f32, 16> = array<f32, 16>(${values.join(", ")});
fn wsetup(t: u32) {}`;
  }
  return `var<workgroup> CODE: array<f32, 16>;
fn wsetup(t: u32) {
  if (t == 0u) {
${values.map((v, i) => `    CODE[${i}] = ${v};`).join("\n")}
  }
}`;
}

/** The packed arrays of a container: its words, and its absmax stored or double-quantized. */
function packArrays(q: Blockwise4Weight): PackedArrays {
  if (!q.dq) return { ...NO_SIDE_ARRAYS, data: q.packed, absmax: q.absmax };
  return { data: q.packed, ...packDoubleQuant(q.dq) };
}

/**
 * The side arrays of a double-quantized absmax as devices hold them: the 8-bit codes packed four
 * to a word, the scales [offset, nested absmax…] and the map (no plain absmax).
 */
export function packDoubleQuant(
  dq: DoubleQuantAbsmax,
): Pick<PackedArrays, "absmax" | "dqCodes" | "dqScales" | "dqMap"> {
  const dqScales = new Float32Array(1 + dq.scales.length); // [offset, nested absmax…]
  dqScales[0] = dq.offset[0];
  dqScales.set(dq.scales, 1);
  return { absmax: null, dqCodes: packInt8(dq.codes), dqScales, dqMap: dq.map };
}

// ---------------------------------------------------------------------------------------------
// The format specs.

function blockwise4Spec(
  format: Format4,
  title: string,
  table: readonly number[],
): QuantFormatSpec<Blockwise4Weight> {
  const code = sharedTable(format); // f32, the precision both decoders multiply in
  return {
    name: format,
    title,
    table,
    bitsPerWeight(o: QuantizeOptions = {}): number {
      const bs = o.blockSize ?? DEFAULT_BLOCK_SIZE;
      return o.doubleQuant
        ? 4 + 8 / bs + 32 / (bs * (o.dqBlockSize ?? DQ_BLOCK_SIZE))
        : 4 + 32 / bs;
    },
    quantize: (weights, shape, opts) => quantizeBlockwise4(weights, shape, format, opts),
    pack(q: QuantizedWeight): PackedWeight {
      if (!(q instanceof Blockwise4Weight) || q.format !== format) throw unsupportedContainer(q);
      const [N, K] = packShape(q);
      const layout = { format, N, K, blockSize: q.blockSize, dqBlockSize: q.dq?.blockSize ?? 0 };
      return { layout, arrays: packArrays(q) };
    },
    decoder(p: PackedWeight): Decoder {
      const { blockSize } = p.layout;
      const data = p.arrays.data;
      const amax = absmaxOf(p.arrays, p.layout);
      const t = new Float32Array(16); // f32(code[c] · a) of the block at hand
      return (i0, n, out) => {
        const end = i0 + n;
        for (let i = i0; i < end;) {
          const b = Math.floor(i / blockSize), a = amax(b); // one block at a time
          const stop = Math.min(end, (b + 1) * blockSize);
          // The f64 product is exact; the store rounds it to f32 once, as WGSL's f32 multiply.
          for (let c = 0; c < 16; c++) t[c] = code[c] * a;
          for (; i < stop && (i & 7) !== 0; i++) {
            out[i - i0] = t[(data[i >>> 3] >>> ((i & 7) * 4)) & 15];
          }
          for (; i + 8 <= stop; i += 8) { // whole words: eight codes at a time
            const v = data[i >>> 3], o = i - i0;
            out[o] = t[v & 15];
            out[o + 1] = t[(v >>> 4) & 15];
            out[o + 2] = t[(v >>> 8) & 15];
            out[o + 3] = t[(v >>> 12) & 15];
            out[o + 4] = t[(v >>> 16) & 15];
            out[o + 5] = t[(v >>> 20) & 15];
            out[o + 6] = t[(v >>> 24) & 15];
            out[o + 7] = t[v >>> 28];
          }
          for (; i < stop; i++) out[i - i0] = t[(data[i >>> 3] >>> ((i & 7) * 4)) & 15];
        }
      };
    },
    bindings: (l: KernelLayout) => (l.dqBlockSize > 0 ? 4 : 2),
    wgsl: (l: KernelLayout, b0: number, o: WgslOptions = {}) =>
      `@group(0) @binding(${b0}) var<storage, read> QW: array<u32>;
${absmaxWgsl(l, b0)}
${codeTableWgsl(code, o.codeTable ?? "private")}
fn wval(i: u32, n: u32) -> f32 {
  return CODE[(QW[i >> 3u] >> ((i & 7u) * 4u)) & 15u] * amax(i / ${l.blockSize}u);
}
fn wload8(i0: u32, n: u32) -> array<f32, 8> {
  var o: array<f32, 8>;
  let w = QW[i0 >> 3u];
  let a = amax(i0 / ${l.blockSize}u);
  for (var j = 0u; j < 8u; j++) { o[j] = CODE[(w >> (4u * j)) & 15u] * a; }
  return o;
}
fn wload4(i0: u32, n: u32) -> vec4<f32> {
  let w = QW[i0 >> 3u] >> ((i0 & 7u) * 4u); // i0 is a multiple of 4: one half of a word
  let a = amax(i0 / ${l.blockSize}u);
  return vec4(CODE[w & 15u] * a, CODE[(w >> 4u) & 15u] * a, CODE[(w >> 8u) & 15u] * a,
              CODE[(w >> 12u) & 15u] * a);
}`,
  };
}

/**
 * NF4 (QLoRA's NormalFloat4): 4 + 32 / blockSize bits per weight, ≈ 4.127 at block 64 with
 * double quantization.
 */
export const nf4Format: QuantFormatSpec<Blockwise4Weight> = blockwise4Spec(
  "nf4",
  "NF4, 4-bit NormalFloat blockwise (QLoRA)",
  NF4_VALUES,
);

/** FP4 (e2m1, bitsandbytes): 4 + 32 / blockSize bits per weight, less with double quantization. */
export const fp4Format: QuantFormatSpec<Blockwise4Weight> = blockwise4Spec(
  "fp4",
  "FP4, 4-bit e2m1 float blockwise (bitsandbytes)",
  FP4_VALUES,
);

/** Symmetric int4 absmax blockwise: 4 + 32 / blockSize bits per weight. */
export const int4Format: QuantFormatSpec<Blockwise4Weight> = blockwise4Spec(
  "int4",
  "int4, symmetric 4-bit integer blockwise",
  INT4_VALUES,
);
