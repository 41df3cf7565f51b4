/**
 * Packing of codes into u32 words, what a GPU kernel reads.
 *
 * 4-bit codes:
 * - u32 words (what the GPU reads): element 8k+j sits in bits 4j..4j+3 of word k.
 * - bytes: element 2b in the low nibble of byte b, element 2b+1 in the high nibble.
 *
 * The two layouts are the same memory on a little-endian machine; the byte form is computed
 * from the words explicitly here, so it does not depend on the host's byte order.
 *
 * Bytes ({@link packInt8}, four per word) and 16-bit patterns ({@link pack16}, two per word)
 * go low part first, the same little-endian order.
 *
 * @module
 */

/**
 * Packs codes (one per element, each 0..15) into u32 words.
 *
 * @param codes Uint8Array [n]
 * @returns Uint32Array [ceil(n / 8)], unused trailing nibbles are 0.
 */
export function packNibbles(codes: Uint8Array): Uint32Array {
  const words = new Uint32Array(Math.ceil(codes.length / 8));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (!Number.isInteger(c) || c > 15) throw new Error(`packNibbles: code ${i} is ${c}`);
    words[i >>> 3] |= c << ((i & 7) * 4);
  }
  return words;
}

/** The 4-bit code of element `i` in packed words (Uint32Array [ceil(n / 8)]). */
export function nibbleAt(words: Uint32Array, i: number): number {
  return (words[i >>> 3] >>> ((i & 7) * 4)) & 15;
}

/**
 * Unpacks `n` codes from u32 words.
 *
 * @returns Uint8Array [n], each 0..15.
 */
export function unpackNibbles(words: Uint32Array, n: number): Uint8Array {
  const codes = new Uint8Array(n);
  for (let i = 0; i < n; i++) codes[i] = nibbleAt(words, i);
  return codes;
}

/**
 * The byte layout of `n` packed codes: low nibble = even element, high nibble = odd.
 *
 * @returns Uint8Array [ceil(n / 2)]
 */
export function nibblesToBytes(words: Uint32Array, n: number): Uint8Array {
  const bytes = new Uint8Array(Math.ceil(n / 2));
  for (let i = 0; i < n; i++) bytes[i >>> 1] |= nibbleAt(words, i) << ((i & 1) * 4);
  return bytes;
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
