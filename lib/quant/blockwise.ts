/**
 * 4-bit blockwise absmax quantization: NF4, FP4 and symmetric int4.
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
 * @module
 */

import { checkFinite, checkShape } from "./check.ts";
import { codeTable, type Format4, nearestCode, sharedTable } from "./codes.ts";
import { type DoubleQuantAbsmax, doubleQuantize } from "./double_quant.ts";
import { nibbleAt, nibblesToBytes } from "./pack.ts";
import type { QuantizedWeight } from "./weight.ts";

/** Default weights per block (QLoRA's 64). */
export const DEFAULT_BLOCK_SIZE = 64;

/** Options of the 4-bit quantizers. */
export interface Blockwise4Options {
  /** Weights per absmax block: a multiple of 8 in [32, 4096]. Default 64. */
  blockSize?: number;
  /** Double-quantize the absmax constants (QLoRA, bitsandbytes' scheme). Default false. */
  doubleQuant?: boolean;
  /** Absmax constants per nested block of double quantization. Default 256. */
  dqBlockSize?: number;
}

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
  const fn = { nf4: "quantizeNF4", fp4: "quantizeFP4", int4: "quantizeInt4" }[format];
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  checkBlockSize(fn, blockSize);
  const numel = checkShape(fn, shape, weights.length);
  checkFinite(fn, weights);
  const table = sharedTable(format);
  const zeroCode = nearestCode(table, 0); // padding and zero blocks
  const numBlocks = Math.ceil(numel / blockSize);
  const absmax = new Float32Array(numBlocks); // [numBlocks]
  const packed = new Uint32Array((numBlocks * blockSize) / 8); // [padded numel / 8]
  for (let b = 0; b < numBlocks; b++) {
    const start = b * blockSize;
    const end = Math.min(start + blockSize, numel);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(weights[i]));
    absmax[b] = m;
    for (let i = start; i < start + blockSize; i++) {
      const c = i < end && m > 0 ? nearestCode(table, weights[i] / m) : zeroCode;
      packed[i >>> 3] |= c << ((i & 7) * 4);
    }
  }
  if (opts.doubleQuant) {
    const dq = doubleQuantize(absmax, opts.dqBlockSize);
    return new Blockwise4Weight(format, shape, blockSize, packed, null, dq);
  }
  return new Blockwise4Weight(format, shape, blockSize, packed, absmax, null);
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
