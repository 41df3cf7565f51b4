// The uniform entry point and honest accounting: bytes from the typed arrays held, checked
// against the figures of the brief and QLoRA (4 + 8/64 + 32/(64*256) ≈ 4.127 bits).
import assert from "node:assert/strict";
import {
  Blockwise4Weight,
  F16Weight,
  F32Weight,
  Int8Weight,
  type QuantFormat,
  quantize,
} from "../../lib/quant/mod.ts";
import { randn } from "../../lib/quant/rng.ts";

const N = 1_000_000;
const W = randn(N, 1);

Deno.test("accounting: 1,000,000 weights in each format", () => {
  const shape = [1000, 1000];
  assert.equal(quantize(W, shape, "f32").bytes, 4_000_000);
  assert.equal(quantize(W, shape, "f16").bytes, 2_000_000);
  assert.equal(quantize(W, shape, "bf16").bitsPerParameter, 16);
  assert.equal(quantize(W, shape, "int8").bytes, 1_000_000 + 4); // + one f32 scale
  assert.equal(quantize(W, shape, "int8-row").bytes, 1_000_000 + 4 * 1000); // + a scale per row
  const nf4 = quantize(W, shape, "nf4");
  assert.equal(nf4.bytes, 500_000 + 4 * 15_625); // codes + an f32 absmax per 64
  assert.equal(nf4.bitsPerParameter, 4.5);
  const dq = quantize(W, shape, "nf4", { doubleQuant: true });
  // codes + an 8-bit map index per absmax + f32 nested absmax per 256 (ceil(15625/256) = 62)
  // + the f32 offset (the shared 256-entry map is a format constant, like the NF4 table)
  assert.equal(dq.bytes, 500_000 + 15_625 + 62 * 4 + 4); // 515,877
  assert.equal(
    dq.bytes,
    dq.packed.byteLength + dq.dq!.codes.byteLength + dq.dq!.scales.byteLength +
      dq.dq!.offset.byteLength,
  );
  assert.ok(Math.abs(dq.bytes - 515_900) < 100);
  assert.ok(Math.abs(dq.bitsPerParameter - 4.127) < 0.001, `${dq.bitsPerParameter}`);
  assert.ok(Math.abs(dq.bitsPerParameter - (4 + 8 / 64 + 32 / (64 * 256))) < 1e-4);
});

Deno.test("accounting: padding of a ragged last block is counted", () => {
  const q = quantize(W.subarray(0, 1000), [10, 100], "fp4"); // 16 blocks of 64, 24 padded
  assert.equal(q.bytes, 16 * 32 + 16 * 4);
  assert.equal(q.bitsPerParameter, (576 * 8) / 1000);
});

Deno.test("quantize: returns the right container for each format", () => {
  const w = W.subarray(0, 4096);
  const kinds: [QuantFormat, unknown][] = [
    ["f32", F32Weight],
    ["f16", F16Weight],
    ["bf16", F16Weight],
    ["int8", Int8Weight],
    ["int8-row", Int8Weight],
    ["nf4", Blockwise4Weight],
    ["fp4", Blockwise4Weight],
    ["int4", Blockwise4Weight],
  ];
  for (const [format, cls] of kinds) {
    const q = quantize(w, [64, 64], format, { blockSize: 128 });
    assert.ok(q instanceof (cls as new (...a: never[]) => unknown), format);
    assert.equal(q.format, format);
    assert.deepEqual(q.shape, [64, 64]);
    assert.equal(q.numel, 4096);
    assert.equal(q.dequantize().length, 4096);
    assert.equal(q.bitsPerParameter, (q.bytes * 8) / 4096);
  }
  assert.equal(quantize(w, [4096], "nf4", { blockSize: 128 }).numBlocks, 32);
  assert.throws(() => quantize(w, [4096], "nf3" as QuantFormat), /quantize: unknown format "nf3"/);
});
