/**
 * The SIMD inner loop of `qmatvecCpuFast` (`qmatvec_cpu_fast.ts`) for 4-bit weights whose absmax
 * blocks lie inside rows and hold a multiple of 32 weights: WebAssembly v128, assembled here
 * (this file is the source), run on the shared arena memory (`wasm_arena.ts`) by the main thread
 * and by the helper thread (`qmatvec_threads.ts`). Its TypeScript twin is {@link rowsSimdTs}
 * (`qmatvec_simd_ts.ts`): same operations, same order, same bits (tested).
 *
 * `rows(tab, xe, codes, amax, dqc, dqs, dqmap, dqbs, out, P, hb, n0, n1)` (byte addresses):
 * for rows n in [n0, n1) of W (P = K/2 bytes of codes per row, hb = blockSize/2 per block),
 * out[n] (f64) = Σ over the row's blocks b of f64(blockSum_b) · f64(absmax_b), where
 *
 * - 16 bytes of codes at a time (32 weights): the low nibbles are the even columns, the high
 *   nibbles the odd ones; x comes de-interleaved (xe: x[0], x[2], …, P floats; then x[1], x[3],
 *   …, P floats) so both line up with 16 codes in byte order;
 * - the code table's f32 values are split into 4 byte planes (`tab`, 4 × 16 bytes): 4 swizzles
 *   look up 16 codes' bytes, 2 byte and 2 16-bit interleaves rebuild the exact f32 values;
 * - 4 f32x4 accumulators (lanes i = 0…15 of the 16 codes) add `value · x` in f32, even half
 *   then odd half per 16 bytes; blockSum = f32((acc0 + acc1) + (acc2 + acc3)) reduced over its
 *   lanes as (l0 + l2) + (l1 + l3);
 * - absmax_b is `amax[b]`, or (amax = 0, double quantization) f32(f32(dqmap[dqc[b]] ·
 *   dqs[1 + ⌊b / dqbs⌋]) + dqs[0]), the reference decoder's steps.
 *
 * @module
 */

import {
  BR_IF,
  ELSE,
  END,
  F32_ADD,
  F32_LOAD,
  F32_MUL,
  F64_ADD,
  F64_CONST,
  F64_MUL,
  F64_PROMOTE,
  F64_STORE,
  get,
  i32,
  I32_ADD,
  I32_DIV_U,
  I32_LOAD8_U,
  I32_LT_U,
  I32_MUL,
  I32_SHL,
  IF,
  LOOP,
  section,
  set,
  str,
  TEE,
  uleb,
  vec,
  VOID,
  WASM_HEADER,
} from "./wasm_asm.ts";
const SIMD = 0xfd;
const V128_LOAD = [SIMD, ...uleb(0x00)],
  V128_CONST = [SIMD, ...uleb(0x0c)],
  SHUFFLE = [SIMD, ...uleb(0x0d)];
const SWIZZLE = [SIMD, ...uleb(0x0e)], RELAXED_SWIZZLE = [SIMD, ...uleb(0x100)];
const F32X4_EXTRACT = [SIMD, ...uleb(0x1f)],
  V128_AND = [SIMD, ...uleb(0x4e)],
  I16X8_SHR_U = [SIMD, ...uleb(0x8d)];
const F32X4_ADD = [SIMD, ...uleb(0xe4)], F32X4_MUL = [SIMD, ...uleb(0xe6)];
const V128 = 0x7b, I32 = 0x7f, F32 = 0x7d, F64 = 0x7c;

// Params (i32).
const TAB = 0, XE = 1, CODES = 2, AMAX = 3, DQC = 4, DQS = 5, DQMAP = 6, DQBS = 7, OUT = 8;
const P = 9, HB = 10, N0 = 11, N1 = 12;
// Locals: i32 13…20, f64 21, v128 22…
const N = 13, T = 14, BEND = 15, REND = 16, B = 17, XP = 18, P4 = 19, XO = 20, S = 21;
const T0 = 22, MASK = 26, ACC = 27, V = 31, IDX = 32, Q0 = 33, Q1 = 34, A = 35, C = 36, BB = 37;
const D = 38, SUM = 39;

const range = (a: number, n: number) => Array.from({ length: n }, (_, i) => a + i);
const IL8_LO = range(0, 8).flatMap((i) => [i, 16 + i]);
const IL8_HI = range(8, 8).flatMap((i) => [i, 16 + i]);
const IL16_LO = range(0, 4).flatMap((i) => [2 * i, 2 * i + 1, 16 + 2 * i, 17 + 2 * i]);
const IL16_HI = range(4, 4).flatMap((i) => [2 * i, 2 * i + 1, 16 + 2 * i, 17 + 2 * i]);
const HIGH_HALF = [...range(8, 8), ...range(8, 8)];
const shuffle = (
  a: number,
  b: number,
  lanes: number[],
) => [...get(a), ...get(b), ...SHUFFLE, ...lanes];
const mem = (align: number, offset: number) => [align, ...uleb(offset)];

/** 16 codes (local IDX) against 16 floats of x at XADDR: acc_q += value(code 4q…4q+3) · x. */
function half(xaddr: number, swz: number[]): number[] {
  const planes = (t0: number) => [
    ...get(T0 + t0),
    ...get(IDX),
    ...swz,
    ...set(Q0),
    ...get(T0 + t0 + 1),
    ...get(IDX),
    ...swz,
    ...set(Q1),
  ];
  const o: number[] = [
    ...planes(0),
    ...shuffle(Q0, Q1, IL8_LO), // bytes 0,1 of codes 0…7
    ...set(A),
    ...shuffle(Q0, Q1, IL8_HI), // of codes 8…15
    ...set(C),
    ...planes(2),
    ...shuffle(Q0, Q1, IL8_LO), // bytes 2,3 of codes 0…7
    ...set(BB),
    ...shuffle(Q0, Q1, IL8_HI),
    ...set(D),
  ];
  const parts: [number, number, number[]][] = [[A, BB, IL16_LO], [A, BB, IL16_HI], [
    C,
    D,
    IL16_LO,
  ], [C, D, IL16_HI]];
  parts.forEach(([u, w, lanes], q) => {
    o.push(
      ...get(ACC + q),
      ...shuffle(u, w, lanes),
      ...get(xaddr),
      ...V128_LOAD,
      ...mem(4, 16 * q),
    );
    o.push(...F32X4_MUL, ...F32X4_ADD, ...set(ACC + q));
  });
  return o;
}

function rowsBody(swz: number[]): number[] {
  const zeroV = [...V128_CONST, ...Array(16).fill(0)];
  const chunk = [
    // v = codes[t … t+16); xo = xp + 4P
    ...get(T),
    ...V128_LOAD,
    ...mem(0, 0),
    ...set(V),
    ...get(XP),
    ...get(P4),
    I32_ADD,
    ...set(XO),
    ...get(V),
    ...get(MASK),
    ...V128_AND,
    ...set(IDX),
    ...half(XP, swz),
    ...get(V),
    ...i32(4),
    ...I16X8_SHR_U,
    ...get(MASK),
    ...V128_AND,
    ...set(IDX),
    ...half(XO, swz),
    ...get(T),
    ...i32(16),
    I32_ADD,
    ...set(T),
    ...get(XP),
    ...i32(64),
    I32_ADD,
    ...set(XP),
  ];
  const absmax = [
    ...get(AMAX),
    IF,
    F32, // the block yields an f32
    ...get(AMAX),
    ...get(B),
    ...i32(2),
    I32_SHL,
    I32_ADD,
    F32_LOAD,
    ...mem(2, 0),
    ELSE,
    ...get(DQMAP),
    ...get(DQC),
    ...get(B),
    I32_ADD,
    I32_LOAD8_U,
    ...mem(0, 0),
    ...i32(2),
    I32_SHL,
    I32_ADD,
    F32_LOAD,
    ...mem(2, 0),
    ...get(DQS),
    ...get(B),
    ...get(DQBS),
    I32_DIV_U,
    ...i32(2),
    I32_SHL,
    I32_ADD,
    F32_LOAD,
    ...mem(2, 4),
    F32_MUL,
    ...get(DQS),
    F32_LOAD,
    ...mem(2, 0),
    F32_ADD,
    END,
  ];
  const block = [
    ...get(T),
    ...get(HB),
    I32_ADD,
    ...set(BEND),
    ...range(0, 4).flatMap((q) => [...zeroV, ...set(ACC + q)]),
    LOOP,
    VOID,
    ...chunk,
    ...get(T),
    ...get(BEND),
    I32_LT_U,
    BR_IF,
    0,
    END,
    // sum = (acc0 + acc1) + (acc2 + acc3); blk = (l0 + l2) + (l1 + l3)
    ...get(ACC),
    ...get(ACC + 1),
    ...F32X4_ADD,
    ...get(ACC + 2),
    ...get(ACC + 3),
    ...F32X4_ADD,
    ...F32X4_ADD,
    ...set(SUM),
    ...get(SUM),
    ...shuffle(SUM, SUM, HIGH_HALF),
    ...F32X4_ADD,
    ...set(SUM),
    ...get(SUM),
    ...F32X4_EXTRACT,
    0,
    ...get(SUM),
    ...F32X4_EXTRACT,
    1,
    F32_ADD,
    F64_PROMOTE,
    ...absmax,
    F64_PROMOTE,
    F64_MUL,
    ...get(S),
    F64_ADD,
    ...set(S),
    ...get(B),
    ...i32(1),
    I32_ADD,
    ...set(B),
  ];
  const row = [
    // t = codes + n·P; rend = t + P; b = n·P / hb; xp = xe; s = 0
    ...get(N),
    ...get(P),
    I32_MUL,
    ...get(HB),
    I32_DIV_U,
    ...set(B),
    ...get(CODES),
    ...get(N),
    ...get(P),
    I32_MUL,
    I32_ADD,
    TEE,
    T,
    ...get(P),
    I32_ADD,
    ...set(REND),
    ...get(XE),
    ...set(XP),
    F64_CONST,
    ...Array(8).fill(0),
    ...set(S),
    LOOP,
    VOID,
    ...block,
    ...get(T),
    ...get(REND),
    I32_LT_U,
    BR_IF,
    0,
    END,
    ...get(OUT),
    ...get(N),
    ...i32(3),
    I32_SHL,
    I32_ADD,
    ...get(S),
    F64_STORE,
    ...mem(3, 0),
  ];
  const code = [
    // the tables' 4 planes and the nibble mask
    ...range(0, 4).flatMap((j) => [...get(TAB), ...V128_LOAD, ...mem(0, 16 * j), ...set(T0 + j)]),
    ...V128_CONST,
    ...Array(16).fill(15),
    ...set(MASK),
    ...get(P),
    ...i32(2),
    I32_SHL,
    ...set(P4),
    ...get(N0),
    ...set(N),
    ...get(N),
    ...get(N1),
    I32_LT_U,
    IF,
    VOID,
    LOOP,
    VOID,
    ...row,
    ...get(N),
    ...i32(1),
    I32_ADD,
    TEE,
    N,
    ...get(N1),
    I32_LT_U,
    BR_IF,
    0,
    END,
    END,
    END,
  ];
  return [...vec([[8, I32], [1, F64], [SUM - T0 + 1, V128]]), ...code];
}

/**
 * The module's bytes: imports `env.mem` (shared, up to 65535 pages), exports `rows`. With
 * `relaxed`, the look-ups use `i8x16.relaxed_swizzle` (the same values for indices < 16, which
 * they always are; one instruction fewer on x86).
 */
export function simdWasmBytes(relaxed: boolean): Uint8Array {
  const fn = rowsBody(relaxed ? RELAXED_SWIZZLE : SWIZZLE);
  return new Uint8Array([
    ...WASM_HEADER,
    ...section(1, vec([[0x60, ...uleb(13), ...Array(13).fill(I32), 0]])),
    ...section(2, vec([[...str("env"), ...str("mem"), 0x02, 0x03, 1, ...uleb(65535)]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...str("rows"), 0x00, 0]])),
    ...section(10, vec([[...uleb(fn.length), ...fn]])),
  ]);
}

/** `rows` as JavaScript sees it (addresses as numbers; see the module comment). */
export type RowsFn = (
  tab: number,
  xe: number,
  codes: number,
  amax: number,
  dqc: number,
  dqs: number,
  dqmap: number,
  dqbs: number,
  out: number,
  P: number,
  hb: number,
  n0: number,
  n1: number,
) => void;

/** The bytes that validate here (relaxed swizzle where supported), or null without SIMD. */
export function simdModuleBytes(): Uint8Array | null {
  for (const relaxed of [true, false]) {
    const b = simdWasmBytes(relaxed);
    if (WebAssembly.validate(b as BufferSource)) return b;
  }
  return null;
}

/** Instantiates `rows` on a shared memory; null where that fails. */
export function instantiateRows(bytes: Uint8Array, mem: WebAssembly.Memory): RowsFn | null {
  try {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes as BufferSource), {
      env: { mem },
    });
    return inst.exports.rows as RowsFn;
  } catch {
    return null;
  }
}
