import assert from "node:assert/strict";
import { ByteTokenizer, type Tokenizer, tokenizerFromJSON } from "../../lib/data/mod.ts";

/** Small seeded RNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Code point ranges to draw from: ASCII, Latin-1, Greek, combining marks, CJK, emoji, ... */
const RANGES: [number, number][] = [
  [0x00, 0x7f],
  [0x80, 0x7ff],
  [0x370, 0x3ff],
  [0x300, 0x36f], // combining diacritical marks
  [0x4e00, 0x9fff],
  [0xe000, 0xfffd], // private use + specials, above the surrogates
  [0x1f300, 0x1faff], // emoji
  [0x1f3fb, 0x1f3ff], // skin tone modifiers
  [0x200d, 0x200d], // zero width joiner
  [0x10000, 0x10ffff],
];

function randomString(r: () => number): string {
  const len = Math.floor(r() * 40);
  let s = "";
  for (let i = 0; i < len; i++) {
    const [lo, hi] = RANGES[Math.floor(r() * RANGES.length)];
    s += String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
  }
  return s;
}

Deno.test("ByteTokenizer: shape of the vocabulary", () => {
  const tok: Tokenizer = new ByteTokenizer();
  assert.equal(tok.vocabSize, 257);
  assert.equal(tok.eotToken, 256);
  assert.equal(tok.name, "byte");
});

Deno.test("ByteTokenizer: round trip of random unicode strings, one id per UTF-8 byte", () => {
  const tok = new ByteTokenizer();
  const r = rng(42);
  const fixed = ["", "hello", "e\u0301", "👍🏽", "👨‍👩‍👧", "日本語", "\u0000\n\t", "a\u0308\u0301"];
  const strings = [...fixed, ...Array.from({ length: 500 }, () => randomString(r))];
  for (const s of strings) {
    const ids = tok.encode(s);
    assert.equal(ids.length, new TextEncoder().encode(s).length, JSON.stringify(s));
    assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 256));
    assert.equal(tok.decode(ids), s);
    assert.equal(tok.decode(new Int32Array(ids)), s, "accepts typed arrays");
  }
  assert.deepEqual(tok.encode("é"), [0xc3, 0xa9]);
});

Deno.test("ByteTokenizer: out-of-range ids throw", () => {
  const tok = new ByteTokenizer();
  for (const id of [-1, 257, 1000, 1.5, NaN, Infinity]) {
    assert.throws(() => tok.decode([65, id]), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /at position 1 is out of range \[0, 257\)/);
      return true;
    });
  }
});

Deno.test("ByteTokenizer: end-of-text token", () => {
  const tok = new ByteTokenizer();
  const ids = [...tok.encode("a"), tok.eotToken, ...tok.encode("b")];
  assert.equal(tok.decode(ids), "a<|endoftext|>b");
  assert.equal(new ByteTokenizer({ eotText: "" }).decode(ids), "ab");
  assert.equal(tok.decode([256, 256]), "<|endoftext|><|endoftext|>");
  // The literal text is bytes, never the special token.
  const lit = tok.encode("<|endoftext|>");
  assert.equal(lit.length, 13);
  assert.ok(!lit.includes(256));
});

Deno.test("ByteTokenizer: invalid or partial UTF-8 decodes to U+FFFD without throwing", () => {
  const tok = new ByteTokenizer();
  assert.equal(tok.decode([0xff]), "\uFFFD");
  assert.equal(tok.decode([0x61, 0xe2, 0x82]), "a\uFFFD"); // truncated "€"
  assert.equal(tok.decode([0xe2, 0x82, 0xac]), "€");
  // EOT in the middle of a character: both halves become replacement characters.
  assert.equal(tok.decode([0xe2, 256, 0x82, 0xac]), "\uFFFD<|endoftext|>\uFFFD\uFFFD");
  // A lone surrogate in the input is encoded as U+FFFD (documented).
  assert.equal(tok.decode(tok.encode("x\uD800y")), "x\uFFFDy");
});

Deno.test("ByteTokenizer: toJSON and tokenizerFromJSON", () => {
  const tok = new ByteTokenizer({ eotText: "" });
  const json = JSON.parse(JSON.stringify(tok));
  assert.deepEqual(json, {
    type: "byte",
    name: "byte",
    vocabSize: 257,
    eotToken: 256,
    eotText: "",
  });
  const back = tokenizerFromJSON(json);
  assert.ok(back instanceof ByteTokenizer);
  assert.equal(back.decode([104, 256, 105]), "hi");
  assert.throws(() => tokenizerFromJSON({ ...json, type: "bpe" }), /unknown tokenizer type "bpe"/);
  assert.throws(() => tokenizerFromJSON({ ...json, vocabSize: 300 }), /vocabSize 257/);
});
