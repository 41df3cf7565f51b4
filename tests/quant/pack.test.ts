// Nibble packing: u32 words (element 8k+j in bits 4j..4j+3) and bytes (low nibble = even).
import assert from "node:assert/strict";
import { nibbleAt, nibblesToBytes, packNibbles, unpackNibbles } from "../../lib/quant/mod.ts";
import { uniforms } from "../../lib/quant/rng.ts";

Deno.test("pack: words and bytes match the documented layout on random codes", () => {
  const u = uniforms(11);
  for (let n = 1; n <= 70; n++) {
    const codes = new Uint8Array(n).map(() => Math.floor(u() * 16));
    const words = packNibbles(codes);
    assert.equal(words.length, Math.ceil(n / 8));
    for (let k = 0; k < words.length; k++) {
      let ref = 0; // float64 sum of code * 16^j is exact below 2^32
      for (let j = 0; j < 8 && 8 * k + j < n; j++) ref += codes[8 * k + j] * 16 ** j;
      assert.equal(words[k], ref);
    }
    assert.deepEqual(unpackNibbles(words, n), codes);
    for (let i = 0; i < n; i++) assert.equal(nibbleAt(words, i), codes[i]);
    const bytes = nibblesToBytes(words, n);
    assert.equal(bytes.length, Math.ceil(n / 2));
    for (let b = 0; b < bytes.length; b++) {
      assert.equal(bytes[b], codes[2 * b] + 16 * (2 * b + 1 < n ? codes[2 * b + 1] : 0));
    }
  }
});

Deno.test("pack: on a little-endian host the byte layout is the words' memory", () => {
  const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const codes = new Uint8Array(64).map((_, i) => (i * 7) % 16);
  const words = packNibbles(codes);
  if (littleEndian) assert.deepEqual(new Uint8Array(words.buffer), nibblesToBytes(words, 64));
});

Deno.test("pack: codes above 15 are rejected", () => {
  assert.throws(() => packNibbles(new Uint8Array([1, 16])), /packNibbles: code 1 is 16/);
});
