/**
 * Helpers to write WebAssembly binaries by hand (the kernels of `qmatvec_wasm.ts` and
 * `qmatvec_simd.ts` are assembled in TypeScript: no toolchain, no committed binary): LEB128
 * integers, names, vectors and sections of the binary format.
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
