/**
 * Helpers to write WebAssembly binaries by hand (the kernels of `qmatvec_wasm.ts` and
 * `qmatvec_simd.ts` are assembled in TypeScript: no toolchain, no committed binary): LEB128
 * integers, names, vectors and sections of the binary format, the scalar opcodes both kernels use
 * and the instructions that read and write locals.
 *
 * @module
 */

/** Unsigned LEB128. */
export function uleb(v: number): number[] {
  const o: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    o.push(b);
  } while (v);
  return o;
}

/** Signed LEB128 (32-bit). */
export function sleb(v: number): number[] {
  const o: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && (b & 0x40))) {
      o.push(b);
      return o;
    }
    o.push(b | 0x80);
  }
}

/** A name: its UTF-8 length, then its bytes. */
export const str = (s: string): number[] => [
  ...uleb(s.length),
  ...new TextEncoder().encode(s),
];

/** A section: id, byte length, body. */
export const section = (id: number, body: number[]): number[] => [
  id,
  ...uleb(body.length),
  ...body,
];

/** A vector: item count, then the items. */
export const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];

/** The 8-byte header of a module (magic, version 1). */
export const WASM_HEADER: readonly number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

// Scalar opcodes (the SIMD ones, prefix 0xfd, stay with qmatvec_simd.ts).
/** Control: block, loop, if, else, end, br, br_if; the empty block type; select. */
export const BLOCK = 0x02, LOOP = 0x03, IF = 0x04, ELSE = 0x05, END = 0x0b, BR = 0x0c;
/** See {@link BLOCK}. */
export const BR_IF = 0x0d, VOID = 0x40, SELECT = 0x1b;
/** Locals and constants. */
export const GET = 0x20, SET = 0x21, TEE = 0x22, I32_CONST = 0x41, F64_CONST = 0x44;
/** Memory. */
export const I32_LOAD = 0x28, F32_LOAD = 0x2a, F64_LOAD = 0x2b, I32_LOAD8_U = 0x2d;
/** See {@link I32_LOAD}. */
export const F32_STORE = 0x38, F64_STORE = 0x39;
/** i32 comparisons. */
export const I32_EQZ = 0x45, I32_LT_U = 0x49, I32_GT_U = 0x4b, I32_GE_U = 0x4f;
/** i32 arithmetic. */
export const I32_ADD = 0x6a, I32_MUL = 0x6c, I32_DIV_U = 0x6e, I32_AND = 0x71, I32_OR = 0x72;
/** See {@link I32_ADD}. */
export const I32_SHL = 0x74, I32_SHR_U = 0x76;
/** Float arithmetic and conversions. */
export const F32_ADD = 0x92, F32_MUL = 0x94, F64_ADD = 0xa0, F64_MUL = 0xa2;
/** See {@link F32_ADD}. */
export const F32_DEMOTE = 0xb6, F64_PROMOTE = 0xbb;

/** `local.get l`. */
export const get = (l: number): number[] => [GET, l];
/** `local.set l`. */
export const set = (l: number): number[] => [SET, l];
/** `i32.const v`. */
export const i32 = (v: number): number[] => [I32_CONST, ...sleb(v)];
