/**
 * The inner loop of `qmatvecCpuFast` (`qmatvec_cpu_fast.ts`) as a small WebAssembly function,
 * assembled here from its instructions (no toolchain, no committed binary: this file is the
 * source). Scalar wasm, no SIMD: the same look-ups and float64 sums, in the same order, as the
 * TypeScript loop {@link rowSumsTs}, so the two agree bit for bit (tests/quant/qmatvec_fast.test.ts),
 * at about a third of its time (no bounds checks, constant look-up offsets).
 *
 * `pairs(code, x, lut, P)` builds the look-up tables of one row of x, as `pairTable` there.
 * `matvec(lut, codes, amax, out, n0, n1, P, hb)` (byte addresses in the module's memory):
 * for rows n in [n0, n1), out[n] (f64) = Σ over blocks b of the row (bytes t of codes,
 * P = K/2 per row, hb = blockSize/2 per block): amax[b] · Σ_t lut[(t − nP)·256 + codes[t]],
 * whole u32 words as ((l0 + l1) + (l2 + l3)) where a block segment starts and ends on a word.
 *
 * @module
 */

import {
  BLOCK,
  BR,
  BR_IF,
  ELSE,
  END,
  F32_DEMOTE,
  F32_LOAD,
  F32_STORE,
  F64_ADD,
  F64_CONST,
  F64_LOAD,
  F64_MUL,
  F64_PROMOTE,
  F64_STORE,
  get,
  i32,
  I32_ADD,
  I32_AND,
  I32_DIV_U,
  I32_EQZ,
  I32_GE_U,
  I32_GT_U,
  I32_LOAD,
  I32_LOAD8_U,
  I32_LT_U,
  I32_MUL,
  I32_OR,
  I32_SHL,
  I32_SHR_U,
  IF,
  LOOP,
  section,
  SELECT,
  set,
  str,
  TEE,
  uleb,
  vec,
  VOID,
  WASM_HEADER,
} from "./wasm_asm.ts";

// Locals: params 0..7, then i32 8..14, f64 15..16.
const LUT = 0, CODES = 1, AMAX = 2, OUT = 3, N0 = 4, N1 = 5, P = 6, HB = 7;
const N = 8, T = 9, E = 10, B = 11, STOP = 12, O = 13, V = 14, S = 15, PART = 16;

const f64zero = [F64_CONST, 0, 0, 0, 0, 0, 0, 0, 0];
/** f32.load (align 4) at the address on the stack + offset, promoted to f64. */
const lutLoad = (offset: number) => [F32_LOAD, 2, ...uleb(offset), F64_PROMOTE];
/** lut[o + byte j of v]: (v >> (8j − 2)) & 0x3fc, plus o, loaded with offset 1024·j. */
function wordByte(j: number): number[] {
  const idx = j === 0 ? [...get(V), ...i32(2), I32_SHL] : [...get(V), ...i32(8 * j - 2), I32_SHR_U];
  return [...idx, ...i32(0x3fc), I32_AND, ...get(O), I32_ADD, ...lutLoad(1024 * j)];
}

/** Whole words up to local `stop`: part += (l0 + l1) + (l2 + l3); o += 4096; t += 4. */
function wordLoop(stop: number): number[] {
  return [
    BLOCK,
    VOID,
    LOOP,
    VOID,
    ...get(T),
    ...get(stop),
    I32_GE_U,
    BR_IF,
    1,
    ...get(CODES),
    ...get(T),
    I32_ADD,
    I32_LOAD,
    2,
    0,
    ...set(V),
    ...get(PART),
    ...wordByte(0),
    ...wordByte(1),
    F64_ADD,
    ...wordByte(2),
    ...wordByte(3),
    F64_ADD,
    F64_ADD,
    F64_ADD,
    ...set(PART),
    ...get(O),
    ...i32(4096),
    I32_ADD,
    ...set(O),
    ...get(T),
    ...i32(4),
    I32_ADD,
    ...set(T),
    BR,
    0,
    END,
    END,
  ];
}

function body(): number[] {
  const words = wordLoop(STOP);
  const bytes = [ // one byte at a time: part += lut[o + 4·codes[t]]; o += 1024; t += 1
    BLOCK,
    VOID,
    LOOP,
    VOID,
    ...get(T),
    ...get(STOP),
    I32_GE_U,
    BR_IF,
    1,
    ...get(PART),
    ...get(CODES),
    ...get(T),
    I32_ADD,
    I32_LOAD8_U,
    0,
    0,
    ...i32(2),
    I32_SHL,
    ...get(O),
    I32_ADD,
    ...lutLoad(0),
    F64_ADD,
    ...set(PART),
    ...get(O),
    ...i32(1024),
    I32_ADD,
    ...set(O),
    ...get(T),
    ...i32(1),
    I32_ADD,
    ...set(T),
    BR,
    0,
    END,
    END,
  ];
  const segment = [
    // b = t / hb; stop = min(end, (b + 1)·hb); part = 0
    ...get(T),
    ...get(HB),
    I32_DIV_U,
    ...set(B),
    ...get(B),
    ...i32(1),
    I32_ADD,
    ...get(HB),
    I32_MUL,
    ...set(STOP),
    ...get(E),
    ...get(STOP),
    ...get(STOP),
    ...get(E),
    I32_GT_U,
    SELECT,
    ...set(STOP),
    ...f64zero,
    ...set(PART),
    // if ((t | stop) & 3) == 0: words, else bytes
    ...get(T),
    ...get(STOP),
    I32_OR,
    ...i32(3),
    I32_AND,
    I32_EQZ,
    IF,
    VOID,
    ...words,
    ELSE,
    ...bytes,
    END,
    // s += part · amax[b]
    ...get(S),
    ...get(PART),
    ...get(AMAX),
    ...get(B),
    ...i32(2),
    I32_SHL,
    I32_ADD,
    ...lutLoad(0),
    F64_MUL,
    F64_ADD,
    ...set(S),
  ];
  const row = [
    // t = n·P; end = t + P; s = 0; o = lut
    ...get(N),
    ...get(P),
    I32_MUL,
    TEE,
    T,
    ...get(P),
    I32_ADD,
    ...set(E),
    ...f64zero,
    ...set(S),
    ...get(LUT),
    ...set(O),
    BLOCK,
    VOID,
    LOOP,
    VOID,
    ...get(T),
    ...get(E),
    I32_GE_U,
    BR_IF,
    1,
    ...segment,
    BR,
    0,
    END,
    END,
    // out[n] = s
    ...get(OUT),
    ...get(N),
    ...i32(3),
    I32_SHL,
    I32_ADD,
    ...get(S),
    F64_STORE,
    3,
    0,
  ];
  const code = [
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
  const locals = vec([[7, 0x7f], [2, 0x7c]]);
  return [...locals, ...code];
}

/**
 * `pairs(code, x, lut, P)`: for p < P, h, l < 16, lut[p·256 + h·16 + l] =
 * f32(code[l]·x[2p] + code[h]·x[2p+1]) (products exact in f64, one rounding).
 */
function pairsBody(): number[] {
  const CODE = 0, X = 1, L = 2, PP = 3, p = 4, o = 5, h = 6, A = 7, Bv = 8, HV = 9, LO = 10;
  const los: number[] = [];
  for (let l = 0; l < 16; l++) {
    los.push(...get(CODE), F32_LOAD, 2, ...uleb(4 * l), F64_PROMOTE, ...get(A), F64_MUL);
    los.push(...set(LO + l));
  }
  const stores: number[] = [];
  for (let l = 0; l < 16; l++) {
    stores.push(...get(o), ...get(LO + l), ...get(HV), F64_ADD, F32_DEMOTE);
    stores.push(F32_STORE, 2, ...uleb(4 * l));
  }
  const code = [
    ...i32(0),
    ...set(p),
    ...get(L),
    ...set(o),
    ...get(PP),
    I32_EQZ,
    I32_EQZ,
    IF,
    VOID,
    LOOP,
    VOID,
    // a = x[2p], b = x[2p + 1]
    ...get(X),
    ...get(p),
    ...i32(3),
    I32_SHL,
    I32_ADD,
    F32_LOAD,
    2,
    0,
    F64_PROMOTE,
    ...set(A),
    ...get(X),
    ...get(p),
    ...i32(3),
    I32_SHL,
    I32_ADD,
    F32_LOAD,
    2,
    4,
    F64_PROMOTE,
    ...set(Bv),
    ...los,
    ...i32(0),
    ...set(h),
    LOOP,
    VOID,
    // hv = code[h]·b
    ...get(CODE),
    ...get(h),
    ...i32(2),
    I32_SHL,
    I32_ADD,
    F32_LOAD,
    2,
    0,
    F64_PROMOTE,
    ...get(Bv),
    F64_MUL,
    ...set(HV),
    ...stores,
    ...get(o),
    ...i32(64),
    I32_ADD,
    ...set(o),
    ...get(h),
    ...i32(1),
    I32_ADD,
    TEE,
    h,
    ...i32(16),
    I32_LT_U,
    BR_IF,
    0,
    END,
    ...get(p),
    ...i32(1),
    I32_ADD,
    TEE,
    p,
    ...get(PP),
    I32_LT_U,
    BR_IF,
    0,
    END,
    END,
    END,
  ];
  return [...vec([[3, 0x7f], [19, 0x7c]]), ...code];
}

/**
 * `matvecCols(lut, codes, amax, out, N, P, hb, C)`: the sums of `matvec` for rows [0, N) when
 * every block lies inside one row (P a multiple of hb), C bytes of each row at a time (C a
 * multiple of hb) so that the tables read stay in cache (C·1 KiB); the same sums in the same
 * order, so the same bits.
 */
function colsBody(): number[] {
  // Locals shared with wordLoop: CODES 1, T 9, O 13, V 14, S 15, PART 16.
  const NN = 4, PC = 5, HBC = 6, C = 7, C0 = 8, C1 = 10, n = 11, BE = 12, RE = 17, b = 18;
  const outAddr = [...get(OUT), ...get(n), ...i32(3), I32_SHL, I32_ADD];
  const code = [
    // out[0 … N) = 0
    ...i32(0),
    ...set(n),
    BLOCK,
    VOID,
    LOOP,
    VOID,
    ...get(n),
    ...get(NN),
    I32_GE_U,
    BR_IF,
    1,
    ...outAddr,
    ...f64zero,
    F64_STORE,
    3,
    0,
    ...get(n),
    ...i32(1),
    I32_ADD,
    ...set(n),
    BR,
    0,
    END,
    END,
    // for c0 in 0, C, 2C … < P
    ...i32(0),
    ...set(C0),
    BLOCK,
    VOID,
    LOOP,
    VOID,
    ...get(C0),
    ...get(PC),
    I32_GE_U,
    BR_IF,
    1,
    ...get(PC),
    ...get(C0),
    ...get(C),
    I32_ADD,
    TEE,
    C1,
    ...get(C1),
    ...get(PC),
    I32_GT_U,
    SELECT,
    ...set(C1),
    ...i32(0),
    ...set(n),
    BLOCK,
    VOID,
    LOOP,
    VOID,
    ...get(n),
    ...get(NN),
    I32_GE_U,
    BR_IF,
    1,
    ...outAddr,
    F64_LOAD,
    3,
    0,
    ...set(S),
    ...get(n),
    ...get(PC),
    I32_MUL,
    ...get(C0),
    I32_ADD,
    TEE,
    T,
    ...get(HBC),
    I32_DIV_U,
    ...set(b),
    ...get(n),
    ...get(PC),
    I32_MUL,
    ...get(C1),
    I32_ADD,
    ...set(RE),
    ...get(LUT),
    ...get(C0),
    ...i32(10),
    I32_SHL,
    I32_ADD,
    ...set(O),
    BLOCK,
    VOID,
    LOOP,
    VOID,
    ...get(T),
    ...get(RE),
    I32_GE_U,
    BR_IF,
    1,
    ...f64zero,
    ...set(PART),
    ...get(T),
    ...get(HBC),
    I32_ADD,
    ...set(BE),
    ...wordLoop(BE),
    ...get(S),
    ...get(PART),
    ...get(AMAX),
    ...get(b),
    ...i32(2),
    I32_SHL,
    I32_ADD,
    ...lutLoad(0),
    F64_MUL,
    F64_ADD,
    ...set(S),
    ...get(b),
    ...i32(1),
    I32_ADD,
    ...set(b),
    BR,
    0,
    END,
    END,
    ...outAddr,
    ...get(S),
    F64_STORE,
    3,
    0,
    ...get(n),
    ...i32(1),
    I32_ADD,
    ...set(n),
    BR,
    0,
    END,
    END,
    ...get(C1),
    ...set(C0),
    BR,
    0,
    END,
    END,
    END,
  ];
  return [...vec([[7, 0x7f], [2, 0x7c], [2, 0x7f]]), ...code];
}

/** The module's bytes: imports env.mem, exports `matvec` and `pairs`. */
export function matvecWasmBytes(): Uint8Array {
  const fn = body(), fp = pairsBody(), fc = colsBody();
  return new Uint8Array([
    ...WASM_HEADER,
    ...section(
      1,
      vec([[0x60, ...uleb(8), ...Array(8).fill(0x7f), 0], [0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 0]]),
    ),
    ...section(2, vec([[...str("env"), ...str("mem"), 0x02, 0x00, 1]])),
    ...section(3, vec([[0], [1], [0]])),
    ...section(
      7,
      vec([
        [...str("matvec"), 0x00, 0],
        [...str("pairs"), 0x00, 1],
        [...str("matvecCols"), 0x00, 2],
      ]),
    ),
    ...section(
      10,
      vec([[...uleb(fn.length), ...fn], [...uleb(fp.length), ...fp], [
        ...uleb(fc.length),
        ...fc,
      ]]),
    ),
  ]);
}

/** The instantiated kernel and its memory (grown on demand, never shrunk). */
export interface MatvecWasm {
  /** The module's memory (64 KiB pages). */
  readonly memory: WebAssembly.Memory;
  /** The exported function (byte addresses). */
  readonly matvec: (
    lut: number,
    codes: number,
    amax: number,
    out: number,
    n0: number,
    n1: number,
    P: number,
    hb: number,
  ) => void;
  /** `matvec` for weights whose blocks lie inside rows, C bytes of each row at a time. */
  readonly matvecCols: (
    lut: number,
    codes: number,
    amax: number,
    out: number,
    N: number,
    P: number,
    hb: number,
    C: number,
  ) => void;
  /** The pair tables of one row of x (see `pairTable` in qmatvec_cpu_fast.ts). */
  readonly pairs: (code: number, x: number, lut: number, P: number) => void;
  /** Grows the memory to hold at least `bytes`; false when it cannot (then use the TS loop). */
  reserve(bytes: number): boolean;
}

let instance: MatvecWasm | null | undefined;

/** The kernel, instantiated once; null where WebAssembly is missing or refuses the module. */
export function matvecWasm(): MatvecWasm | null {
  if (instance !== undefined) return instance;
  try {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const mod = new WebAssembly.Module(matvecWasmBytes() as BufferSource);
    const inst = new WebAssembly.Instance(mod, { env: { mem: memory } });
    instance = {
      memory,
      matvec: inst.exports.matvec as MatvecWasm["matvec"],
      pairs: inst.exports.pairs as MatvecWasm["pairs"],
      matvecCols: inst.exports.matvecCols as MatvecWasm["matvecCols"],
      reserve(bytes: number): boolean {
        const have = memory.buffer.byteLength;
        if (bytes <= have) return true;
        try {
          memory.grow(Math.ceil((bytes - have) / 65536));
          return true;
        } catch {
          return false; // past wasm32's 4 GiB, or out of memory
        }
      },
    };
  } catch {
    instance = null;
  }
  return instance;
}
