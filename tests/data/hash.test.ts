import assert from "node:assert/strict";
import { sha256Hex } from "../../lib/data/mod.ts";

Deno.test("sha256Hex: FIPS 180-2 test vectors", async () => {
  assert.equal(
    await sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    await sha256Hex(""),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    await sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("sha256Hex: strings are UTF-8; bytes, views and buffers agree", async () => {
  const bytes = new TextEncoder().encode("héllo ✓");
  const hex = await sha256Hex("héllo ✓");
  assert.equal(await sha256Hex(bytes), hex);
  assert.equal(await sha256Hex(bytes.buffer), hex);
  const padded = new Uint8Array(bytes.length + 8);
  padded.set(bytes, 4);
  assert.equal(await sha256Hex(padded.subarray(4, 4 + bytes.length)), hex, "only the view");
  assert.match(hex, /^[0-9a-f]{64}$/);
});
