/**
 * The fast CPU product for a few rows of x (decoding: M = 1 per generated token) with a 4-bit
 * blockwise weight (NF4, FP4, int4; with or without double quantization): `y = x · Wᵀ (+ bias)`
 * for M ≤ 4 without ever de-quantizing W. {@link qmatmulCpu} (`qmatmul_cpu.ts`) stays the
 * reference twin; this one computes the same sums in another order. Three paths:
 *
 * 1. Blocks inside rows (K a multiple of blockSize) of 32·j weights (the usual 64): the SIMD
 *    kernel (`qmatvec_simd.ts`, via `qmatvec_simd_run.ts`) on two threads
 *    (`qmatvec_threads.ts`), reading the codes in place when the CPU backend put the weight in
 *    the shared WebAssembly arena (`wasm_arena.ts`; else copied in per call). Per block it
 *    multiplies the exact f32 code values by x and sums in f32 (16 lanes of blockSize/16 terms
 *    each, then 4 more additions), then adds f64(blockSum)·f64(absmax) in float64 over the row.
 * 2. Other even K: 256-entry pair tables per pair of inputs (`code[lo]·x[2p] + code[hi]·x[2p+1]`
 *    rounded to f32), one look-up per byte of codes, summed in float64 per block and multiplied
 *    by that block's absmax (the scalar WebAssembly of `qmatvec_wasm.ts`; its memory holds the
 *    tables, the absmax and a copy of the codes; tables are reused while x stays the same).
 * 3. Odd K (row starts fall inside a byte): a 16-entry table per block, f32(code·absmax) exactly
 *    as the reference's decoder, one multiply-add per weight; equal to the reference bit for bit.
 *
 * Each WebAssembly loop has a TypeScript twin giving the same bits (tested; `rowsSimdTs`,
 * {@link rowSumsTs}), which runs where WebAssembly (SIMD) does not; one thread or two give the
 * same bits too.
 *
 * Numerics against the float64 reference (u = 2^-24), which sums x_k·f32(code·absmax) in f64:
 *
 * - path 1: a product f32(code·x) and its way through an f32 sum tree of depth
 *   blockSize/16 − 1 + 4 take at most blockSize/16 + 4 roundings; the reference's rounding of
 *   the weight adds one more: |y_fast − y_ref| ≤ (blockSize/16 + 6)·u·Σ_k |x_k·w_nk| (10·u at
 *   blocks of 64), plus the f64 sums' error (K·2^-53 relative) and the final rounding of both
 *   to f32 (one f32 ulp of y each). It grows with the block, not with K.
 * - path 2: both sum in float64, each pair's code·x sum is rounded once to f32:
 *   |y_fast − y_ref| ≤ 2·u·Σ_k |x_k·w_nk| (+ the same f64 and final-rounding terms).
 * - path 3: equal.
 *
 * @module
 */

import { type Format4, isFormat4, sharedTable } from "./codes.ts";
import type { PackedArrays, PackedLayout } from "./formats/format.ts";
import { matvecWasm } from "./qmatvec_wasm.ts";
import { simdMatvec } from "./qmatvec_simd_run.ts";
import { absmaxArray } from "./absmax.ts";

/** Whether {@link qmatvecCpuFast} handles this layout (4-bit blockwise formats). */
export function hasFastMatvec(layout: PackedLayout): boolean {
  return isFormat4(layout.format) && layout.blockSize > 0;
}

/** Pair tables of one row of x: Float32Array [K/2 · 256], entry p·256 + byte. */
function pairTable(code: Float32Array, x: Float32Array, x0: number, K: number, lut: Float32Array) {
  const lo = new Float64Array(16), hi = new Float64Array(16);
  const P = K >>> 1;
  for (let p = 0; p < P; p++) {
    const a = x[x0 + 2 * p], b = x[x0 + 2 * p + 1];
    for (let c = 0; c < 16; c++) {
      lo[c] = code[c] * a;
      hi[c] = code[c] * b;
    }
    let o = p << 8;
    for (let h = 0; h < 16; h++) {
      const hv = hi[h];
      for (let l = 0; l < 16; l++) lut[o++] = lo[l] + hv;
    }
  }
}

/** What the WebAssembly memory's pair tables were built for (x itself is kept beside them). */
let lastTables: { K: number; format: string } = { K: -1, format: "" };

/** Whether two arrays hold the same values bit for bit (-0 ≠ 0; NaN never equal: rebuild). */
function sameValues(a: Float32Array, b: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] || (a[i] === 0 && 1 / a[i] !== 1 / b[i])) return false;
  }
  return true;
}

/** Bytes of codes per row and pass of `matvecCols` (a multiple of hb): tables of C KiB. */
let COL_BYTES = 256;

/** C for a block of hb bytes: the multiple of hb nearest {@link COL_BYTES} (at least hb). */
function colBytes(hb: number): number {
  return Math.max(hb, Math.round(COL_BYTES / hb) * hb);
}

/** Sets the bytes per pass of the column-blocked loop (benchmarks; tests). Returns the old one. */
export function setColBytes(c: number): number {
  const old = COL_BYTES;
  COL_BYTES = c;
  return old;
}

/** Options of {@link qmatvecCpuFast}. */
export interface FastMatvecOptions {
  /** Use the WebAssembly loop (`qmatvec_wasm.ts`) when available. Default true. */
  wasm?: boolean;
}

/**
 * `y = x · Wᵀ (+ bias)` for a 4-bit blockwise W [N, K] ({@link hasFastMatvec}) and a few rows
 * of x. Same result as `qmatmulCpu` within the bound in the module comment; the
 * WebAssembly and TypeScript loops give the same bits.
 *
 * @param x Float32Array [M, K]
 * @param bias Float32Array [N] or null
 * @returns Float32Array [M, N]
 */
export function qmatvecCpuFast(
  layout: PackedLayout,
  arrays: PackedArrays,
  x: Float32Array,
  M: number,
  bias: Float32Array | null,
  opts: FastMatvecOptions = {},
): Float32Array {
  if (!hasFastMatvec(layout)) throw new TypeError(`qmatvecCpuFast: format ${layout.format}`);
  const { N, K, blockSize } = layout;
  const code = sharedTable(layout.format as Format4);
  const numBlocks = Math.ceil((N * K) / blockSize);
  const y = new Float32Array(M * N);
  if (K % 2 === 1) {
    oddK(layout, arrays.data, code, absmaxArray(layout, arrays, numBlocks), x, M, bias, y);
    return y;
  }
  const P = K >>> 1, hb = blockSize >>> 1; // bytes of codes per row, per block
  if (P % hb === 0 && hb % 16 === 0) { // blocks inside rows, 32·j weights each: SIMD kernel
    return simdMatvec(layout, arrays, code, x, M, bias, y, opts.wasm ?? true);
  }
  const rowBytes = N * P;
  const wasm = (opts.wasm ?? true) ? matvecWasm() : null;
  // Memory: code table [16], x row [K], pair tables, absmax, codes, f64 sums.
  const codeOff = 0, xOff = 64, lutOff = xOff + Math.ceil(K / 2) * 8, amaxOff = lutOff + P * 1024;
  const codesOff = amaxOff + Math.ceil(numBlocks / 2) * 8;
  const outOff = codesOff + Math.ceil(rowBytes / 8) * 8;
  if (wasm && wasm.reserve(outOff + N * 8)) {
    const buf = wasm.memory.buffer;
    absmaxArray(layout, arrays, numBlocks, new Float32Array(buf, amaxOff, numBlocks));
    const d = arrays.data;
    new Uint8Array(buf, codesOff, rowBytes).set(new Uint8Array(d.buffer, d.byteOffset, rowBytes));
    const xs = new Float32Array(buf, xOff, K), out = new Float64Array(buf, outOff, N);
    for (let m = 0; m < M; m++) {
      const xm = x.subarray(m * K, (m + 1) * K);
      // The tables stay in memory: q, k and v (or gate and up) read the same x; build once.
      if (!(lastTables.K === K && lastTables.format === layout.format && sameValues(xs, xm))) {
        new Float32Array(buf, codeOff, 16).set(code);
        xs.set(xm);
        wasm.pairs(codeOff, xOff, lutOff, P);
        lastTables = { K, format: layout.format };
      }
      if (P % hb === 0) { // blocks inside rows: C bytes of codes per row at a time
        wasm.matvecCols(lutOff, codesOff, amaxOff, outOff, N, P, hb, colBytes(hb));
      } else wasm.matvec(lutOff, codesOff, amaxOff, outOff, 0, N, P, hb);
      for (let n = 0; n < N; n++) y[m * N + n] = out[n] + (bias ? bias[n] : 0);
    }
    return y;
  }
  const amax = absmaxArray(layout, arrays, numBlocks);
  const lut = new Float32Array(P * 256), sums = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    pairTable(code, x, m * K, K, lut);
    rowSumsTs(lut, arrays.data, amax, sums, N, P, hb);
    for (let n = 0; n < N; n++) y[m * N + n] = sums[n] + (bias ? bias[n] : 0);
  }
  return y;
}

/**
 * The TypeScript twin of the WebAssembly `matvec` (`qmatvec_wasm.ts`): for each row n,
 * out[n] = Σ_blocks amax[b] · Σ_bytes lut[…], the same sums in the same order.
 */
export function rowSumsTs(
  lut: Float32Array,
  words: Uint32Array,
  amax: Float32Array,
  out: Float64Array,
  N: number,
  P: number,
  hb: number,
): void {
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  for (let n = 0; n < N; n++) {
    const t0 = n * P, t1 = t0 + P;
    let s = 0, o = 0;
    for (let t = t0; t < t1;) {
      const b = Math.floor(t / hb);
      const stop = Math.min(t1, (b + 1) * hb);
      let part = 0;
      if (((t | stop) & 3) === 0) { // whole u32 words: four look-ups each
        for (; t < stop; t += 4, o += 1024) {
          const v = words[t >>> 2];
          part += (lut[o + (v & 255)] + lut[o + 256 + ((v >>> 8) & 255)]) +
            (lut[o + 512 + ((v >>> 16) & 255)] + lut[o + 768 + (v >>> 24)]);
        }
      } else {
        for (; t < stop; t++, o += 256) part += lut[o + bytes[t]];
      }
      s += part * amax[b];
    }
    out[n] = s;
  }
}

/** Odd K: per block, the 16 weights f32(code·absmax) of the reference decoder; f64 sums. */
function oddK(
  layout: PackedLayout,
  data: Uint32Array,
  code: Float32Array,
  amax: Float32Array,
  x: Float32Array,
  M: number,
  bias: Float32Array | null,
  y: Float32Array,
): void {
  const { N, K, blockSize } = layout;
  const tab = new Float32Array(16);
  const acc = new Float64Array(M);
  for (let n = 0; n < N; n++) {
    const i0 = n * K, i1 = i0 + K;
    acc.fill(0);
    for (let i = i0; i < i1;) {
      const b = Math.floor(i / blockSize);
      const stop = Math.min(i1, (b + 1) * blockSize);
      const a = amax[b];
      for (let c = 0; c < 16; c++) tab[c] = code[c] * a;
      for (let m = 0; m < M; m++) {
        const xo = m * K - i0;
        let s = acc[m]; // the reference's order: one f64 sum along the row
        for (let j = i; j < stop; j++) s += x[xo + j] * tab[(data[j >>> 3] >>> ((j & 7) * 4)) & 15];
        acc[m] = s;
      }
      i = stop;
    }
    for (let m = 0; m < M; m++) y[m * N + n] = acc[m] + (bias ? bias[n] : 0);
  }
}
