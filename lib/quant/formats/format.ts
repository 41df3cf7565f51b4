/**
 * What a quantization format is: one {@link QuantFormatSpec} holds, side by side, its container
 * (`quantize`), its device layout (`pack`), and the two twins that read that layout back, the
 * float32 CPU `decoder` and the WGSL `wgsl` (candle's `GgmlType`, with llm.c's CPU reference next
 * to the kernel). The quantized products (`lib/quant/qmatmul.ts`) and the kernels
 * (`lib/backend/webgpu/kernels/qmatmul.ts`) never name a format; they ask `FORMATS`
 * (`registry.ts`).
 *
 * The device layout of a frozen weight W [N, K] (out × in, PyTorch Linear) is a set of u32 words
 * (`data`) plus f32 side arrays, exactly the buffers a WGSL kernel binds; each format file
 * describes its words. The decoder does each f32 operation of the WGSL in the same order,
 * rounding to f32 after each step, so the twins agree bit for bit wherever the GPU rounds
 * correctly.
 *
 * @module
 */

import type { QuantFormat, QuantizedWeight } from "../weight.ts";

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

/**
 * The part of a {@link PackedLayout} that a WGSL decoder may bake into its source: exactly what
 * the pipeline key (`format:b<blockSize>:dq<dqBlockSize>`) names, never the shape.
 */
export type KernelLayout = Pick<PackedLayout, "format" | "blockSize" | "dqBlockSize">;

/** The arrays of a packed weight (host side; on WebGPU each becomes one storage buffer). */
export interface PackedArrays {
  /** Codes or values as u32 words (see each format file). */
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

/**
 * The float32 decoder of a packed weight: `decode(i0, n, out)` writes elements i0 … i0+n-1 of
 * the row-major W (flat index i = row·K + col) into out[0 … n-1]. Twin of the WGSL `wval`.
 */
export type Decoder = (i0: number, n: number, out: Float32Array) => void;

/** Options of `quantize`; only the 4-bit formats read them. */
export interface QuantizeOptions {
  /** Weights per absmax block: a multiple of 8 in [32, 4096]. Default 64. */
  blockSize?: number;
  /** Double-quantize the absmax constants (QLoRA, bitsandbytes' scheme). Default false. */
  doubleQuant?: boolean;
  /** Absmax constants per nested block of double quantization. Default 256. */
  dqBlockSize?: number;
}

/** The side arrays of a format that has none. */
export const NO_SIDE_ARRAYS: Omit<PackedArrays, "data"> = Object.freeze({
  absmax: null,
  dqCodes: null,
  dqScales: null,
  dqMap: null,
});

/** Options of a format's WGSL decoder ({@link QuantFormatSpec.wgsl}). */
export interface WgslOptions {
  /**
   * Where a code table lives: `"private"` (default), a private array in each thread, or
   * `"workgroup"`, one copy per workgroup filled by `wsetup` (bitsandbytes' 4-bit kernels keep
   * their table in shared memory; a private array indexed by a code may go to a GPU's local
   * memory).
   */
  codeTable?: "private" | "workgroup";
}

/**
 * One storage format: its container and the two twins that read its packed layout.
 *
 * A WGSL decoder (`wgsl(layout, b0)`) declares the weight's storage buffers at bindings b0, b0+1,
 * … ({@link QuantFormatSpec.bindings} of them, in the order of the non-null arrays of
 * {@link PackedArrays}: data, absmax, dqCodes, dqScales, dqMap) and defines three functions that
 * the kernels call, each doing the f32 steps of `decoder` in the same order:
 *
 * - `wval(i: u32, n: u32) -> f32`: element i = n·K + k of W (n its row);
 * - `wload8(i0: u32, n: u32) -> array<f32, 8>`: elements i0 … i0+7 of row n, i0 a multiple of 8;
 * - `wload4(i0: u32, n: u32) -> vec4<f32>`: elements i0 … i0+3 of row n, i0 a multiple of 4;
 * - `wsetup(t: u32)`: with `codeTable: "workgroup"`, called once by every thread t of a
 *   workgroup, then `workgroupBarrier()`, before the first decode: a format with a code table
 *   fills it in workgroup memory there (the others do nothing). With `"private"` (the default)
 *   the table is a private array and the kernels do not call it.
 *
 * @typeParam W the format's container
 */
export interface QuantFormatSpec<W extends QuantizedWeight = QuantizedWeight> {
  /** The format's name, as `quantize`, `--quant` and files spell it (e.g. "nf4"). */
  readonly name: QuantFormat;
  /** A short description for help texts and reports (e.g. "NormalFloat4, 4-bit blockwise"). */
  readonly title: string;
  /** The 4-bit code table (index 0..15) if the format has one, else null. */
  readonly table: readonly number[] | null;
  /**
   * Bits per weight of a large tensor, for reports: the codes plus the scales, without the
   * padding of a ragged last block and the per-tensor constants (what `bitsPerParameter` of a
   * real weight approaches). int8-row's one scale per row is 32 / K more.
   */
  bitsPerWeight(opts?: QuantizeOptions): number;
  /** Stores `weights` (Float32Array [numel], row-major of `shape`) in this format. */
  quantize(weights: Float32Array, shape: readonly number[], opts?: QuantizeOptions): W;
  /**
   * Lays out a 2-D container [N, K] of this format as a device's arrays (shares the words with
   * `q` where they already are the layout: a frozen weight is never written). Throws a TypeError
   * on a container of another class.
   */
  pack(q: QuantizedWeight): PackedWeight;
  /** The CPU twin: the float32 {@link Decoder} of a packed weight of this format. */
  decoder(p: PackedWeight): Decoder;
  /** Number of storage buffers the weight binds. */
  bindings(layout: KernelLayout): number;
  /** The GPU twin: WGSL bindings `b0`… and `wval` / `wload8` / `wload4` / `wsetup` (see above). */
  wgsl(layout: KernelLayout, b0: number, opts?: WgslOptions): string;
}

/** The 2-D shape [N, K] of a container about to be packed; throws unless it is one. */
export function packShape(q: QuantizedWeight): [number, number] {
  if (q.shape.length !== 2 || q.shape[0] < 1 || q.shape[1] < 1) {
    throw new RangeError(
      `packWeight: weight shape [${q.shape.join(",")}] must be 2-D [out, in], both ≥ 1`,
    );
  }
  return [q.shape[0], q.shape[1]];
}

/** The layout of a 2-D container without blocks. */
export function plainLayout(q: QuantizedWeight): PackedLayout {
  const [N, K] = packShape(q);
  return { format: q.format, N, K, blockSize: 0, dqBlockSize: 0 };
}

/** The TypeError `pack` throws for a container that is not its format's. */
export function unsupportedContainer(q: QuantizedWeight): TypeError {
  return new TypeError(`packWeight: unsupported weight container (format ${q.format})`);
}

/** An f32 as a WGSL literal that parses back to the same f32 (shortest round-trip decimal). */
export function wgslF32(x: number): string {
  const s = String(Math.fround(x));
  return /[.e]/.test(s) ? s : `${s}.0`;
}
