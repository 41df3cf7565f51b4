/**
 * The WebGPU 4-bit quantizer (`lib/quant/quantize_webgpu.ts`, kernel
 * `lib/backend/webgpu/kernels/quantize4.ts`) against its CPU twin `quantizeBlockwise4`, on random
 * shapes (numel not a multiple of the block size, block counts not a multiple of the workgroup
 * size), NF4 / FP4 / int4, with and without double quantization, in one chunk and in many:
 *
 * - the absmax (without double quantization) and the double-quantization arrays are equal bit
 *   for bit;
 * - the codes are equal except where w / absmax lies within 2^-22 of a midpoint between the two
 *   codes' values (the kernel divides in f32, the CPU in float64): every differing position is
 *   checked to be such a near-tie between neighbouring values, and there are few. A handful of
 *   near-ties are planted in each tensor (w = f32(midpoint · absmax)) so the rule is exercised;
 * - one block of zeros and the padding of a ragged last block hold the code of 0.0, as the CPU's.
 */

import assert from "node:assert/strict";
import type { WebGpuBackend } from "../../lib/backend/webgpu/webgpu_backend.ts";
import { cpu } from "../../lib/mod.ts";
import { codeTable, type Format4 } from "../../lib/quant/codes.ts";
import { toDevice } from "../../lib/quant/device_weight.ts";
import { packWeight } from "../../lib/quant/packed.ts";
import { quantize } from "../../lib/quant/quantize.ts";
import { quantizeToDevice } from "../../lib/quant/quantize_device.ts";
import { Rng } from "../../lib/rng.ts";
import { setSplitBytes } from "../../lib/tensor.ts";
import { gpu } from "../harness.ts";

/** The tolerance of a code: |w/m − midpoint| ≤ 2^-22 (relative to 1, the largest |w/m|). */
const NEAR_TIE = 2 ** -22;

interface Case {
  format: Format4;
  doubleQuant: boolean;
  shape: [number, number];
  blockSize: number;
  /** Bytes per chunk of the upload (null: the adapter's limit, one chunk). */
  split: number | null;
}

/** Random weights, a whole zero block (when there are two or more), planted near-ties. */
function weightsOf(c: Case, rng: Rng): { w: Float32Array; planted: Set<number> } {
  const [N, K] = c.shape, numel = N * K, bs = c.blockSize;
  const w = new Float32Array(numel);
  for (let i = 0; i < numel; i++) {
    let x = 0;
    while (x === 0) x = Math.fround(0.05 * rng.normal() * (1 + Math.floor(i / bs) % 3));
    w[i] = x;
  }
  const numBlocks = Math.ceil(numel / bs);
  if (numBlocks >= 2) w.fill(0, bs, Math.min(2 * bs, numel)); // block 1: zeros
  const table = codeTable(c.format);
  const vals = [...new Set(table)].sort((a, b) => a - b);
  const planted = new Set<number>();
  for (let b = 0; b < numBlocks; b += 3) {
    if (b === 1) continue;
    const start = b * bs, end = Math.min(start + bs, numel);
    let m = 0, arg = start;
    for (let i = start; i < end; i++) if (Math.abs(w[i]) > m) [m, arg] = [Math.abs(w[i]), i];
    const i = start + rng.int(end - start);
    if (i === arg) continue;
    const k = rng.int(vals.length - 1);
    const mid = (vals[k] + vals[k + 1]) / 2;
    if (Math.abs(mid) >= 1) continue; // int4's -15/14 lies outside [-1, 1]
    w[i] = Math.fround(mid * m);
    planted.add(i);
  }
  return { w, planted };
}

function randomCases(): Case[] {
  const rng = new Rng(16);
  const out: Case[] = [];
  for (const format of ["nf4", "fp4", "int4"] as Format4[]) {
    for (const doubleQuant of [false, true]) {
      for (let r = 0; r < 3; r++) {
        const blockSize = [64, 32, 136][r];
        const shape: [number, number] = r === 0
          ? [67, 1001] // 1,048 blocks of 64 (not a multiple of 256 threads), a ragged last one
          : [1 + rng.int(40), 1 + rng.int(300)];
        out.push({ format, doubleQuant, shape, blockSize, split: r === 1 ? 4096 : null });
      }
    }
  }
  return out;
}

const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

Deno.test({
  name: "WebGPU 4-bit quantizer = the CPU's (absmax bit for bit, codes but near-ties) [webgpu]",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dev = await gpu();
    const engine = (dev as WebGpuBackend).engine;
    const rng = new Rng(5);
    let totalDiff = 0, totalPlanted = 0, plantedDiff = 0, totalNumel = 0;
    for (const c of randomCases()) {
      const what = `${c.format} dq=${c.doubleQuant} [${c.shape}] b${c.blockSize}` +
        (c.split ? ` split ${c.split}` : "");
      const { w, planted } = weightsOf(c, rng);
      const opts = { blockSize: c.blockSize, doubleQuant: c.doubleQuant };
      const q = quantize(w, c.shape, c.format, opts);
      const want = packWeight(q);
      const key = `quantize4:${c.format}:b${c.blockSize}`;
      const before = engine.dispatchesByKernel.get(key) ?? 0;
      const prev = setSplitBytes(c.split);
      let dw;
      try {
        dw = await quantizeToDevice(dev, w, c.shape, c.format, opts);
      } finally {
        setSplitBytes(prev);
      }
      const numel = w.length, bs = c.blockSize, numBlocks = Math.ceil(numel / bs);
      const chunks = c.split
        ? Math.ceil(numel / Math.max(bs, Math.floor(c.split / 4 / bs) * bs))
        : 1;
      assert.equal(
        (engine.dispatchesByKernel.get(key) ?? 0) - before,
        chunks,
        `${what}: dispatches`,
      );
      assert.deepEqual(dw.layout, want.layout, `${what}: layout`);
      const bufs = dw.gpuBuffers();
      const sizes = [
        want.arrays.data,
        want.arrays.absmax,
        want.arrays.dqCodes,
        want.arrays.dqScales,
      ]
        .filter((a) => a !== null).map((a) => a!.byteLength);
      assert.equal(bufs.length, sizes.length + (c.doubleQuant ? 1 : 0), `${what}: buffers`);
      const got = await engine.readMany(sizes.map((bytes, i) => ({ buf: bufs[i], bytes })));
      // Side arrays: equal bit for bit.
      if (c.doubleQuant) {
        assert.deepEqual(new Uint32Array(got[1]), want.arrays.dqCodes, `${what}: dq codes`);
        assert.deepEqual(
          new Uint32Array(got[2]),
          u32(want.arrays.dqScales!),
          `${what}: dq scales`,
        );
      } else {
        assert.deepEqual(new Uint32Array(got[1]), u32(want.arrays.absmax!), `${what}: absmax`);
      }
      // Codes: equal but at near-ties.
      const codes = new Uint32Array(got[0]), ref = want.arrays.data;
      const table = codeTable(c.format);
      const vals = [...new Set(table)].sort((a, b) => a - b);
      let diff = 0, atPlanted = 0;
      for (let b = 0; b < numBlocks; b++) {
        const start = b * bs, end = Math.min(start + bs, numel);
        let m = 0;
        for (let i = start; i < end; i++) m = Math.max(m, Math.abs(w[i]));
        for (let i = start; i < start + bs; i++) {
          const g = (codes[i >>> 3] >>> (4 * (i & 7))) & 15;
          const r = (ref[i >>> 3] >>> (4 * (i & 7))) & 15;
          if (g === r) continue;
          assert.ok(i < end && m > 0, `${what}: padding or zero block code ${g} != ${r} at ${i}`);
          const [lo, hi] = [table[g], table[r]].sort((a, b) => a - b);
          const k = vals.indexOf(lo);
          assert.equal(vals[k + 1], hi, `${what}: codes ${g}, ${r} at ${i} are not neighbours`);
          const x = w[i] / m, mid = (lo + hi) / 2;
          assert.ok(
            Math.abs(x - mid) <= NEAR_TIE,
            `${what}: code ${g} != ${r} at ${i}, w/m = ${x} is ${Math.abs(x - mid)} from ${mid}`,
          );
          diff++;
          if (planted.has(i)) atPlanted++;
        }
      }
      const unplanted = diff - atPlanted;
      assert.ok(unplanted <= 2 + numel * 1e-5, `${what}: ${unplanted} unplanted codes differ`);
      totalDiff += diff;
      plantedDiff += atPlanted;
      totalPlanted += planted.size;
      totalNumel += numel;
      dw.dispose();
    }
    console.log(
      `quantize4: ${totalDiff} of ${totalNumel} codes differ from the CPU's, ` +
        `${plantedDiff} of them at the ${totalPlanted} planted near-ties`,
    );
  },
});

Deno.test({
  name: "quantizeToDevice: a WebGPU weight has no host arrays; dispose frees its buffers [webgpu]",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dev = await gpu();
    const engine = (dev as WebGpuBackend).engine;
    const w = new Float32Array(64 * 8).map((_, i) => Math.sin(i + 1));
    const live = engine.liveBytes;
    const dw = await quantizeToDevice(dev, w, [8, 64], "nf4", { doubleQuant: true });
    assert.throws(() => dw.hostArrays(), /not a CPU weight/);
    assert.equal(dw.bytes, toDevice(cpu, quantize(w, [8, 64], "nf4", { doubleQuant: true })).bytes);
    dw.dispose();
    assert.equal(engine.liveBytes, live, "every buffer given back");
    await assert.rejects(
      () => quantizeToDevice(dev, w.map((x, i) => i === 77 ? NaN : x), [8, 64], "fp4"),
      /quantizeFP4: weight 77 is NaN/,
    );
  },
});

Deno.test("quantizeToDevice on the CPU is quantize then toDevice, the same arrays", async () => {
  const rng = new Rng(3);
  const w = Float32Array.from({ length: 37 * 29 }, () => rng.normal());
  for (const format of ["nf4", "fp4", "int4", "int8-row", "f16"] as const) {
    const opts = { blockSize: 64, doubleQuant: true };
    const got = await quantizeToDevice(cpu, w, [37, 29], format, opts);
    const want = packWeight(quantize(w, [37, 29], format, opts));
    assert.deepEqual(got.layout, want.layout, format);
    assert.deepEqual(got.hostArrays(), want.arrays, format);
  }
});
