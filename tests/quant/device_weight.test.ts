// Weights on a backend in their packed formats: byte accounting, de-quantization on the device
// against lib/quant's CPU `dequantize()`, and the lifecycle (dispose, use after dispose).
import assert from "node:assert/strict";
import { cpu, quant, Rng } from "../../lib/mod.ts";
import { assertClose, bothBackends, gpu } from "../harness.ts";
import { dequantSlack, randomWeight, VARIANTS } from "./qmatmul_util.ts";

const { dequantizeOnDevice, toDevice } = quant;

// Exact where the kernel's decode is one correctly rounded f32 operation (f32, f16, bf16, 4-bit
// without double quantization: table[c]·absmax); int8 and double quantization within
// `dequantSlack` (a division by 127 after a rounded product; see qmatmul_util.ts).
bothBackends(
  "dequantizeOnDevice: every format equals QuantizedWeight.dequantize()",
  async (dev) => {
    const rng = new Rng(21);
    for (const v of VARIANTS) {
      for (const [N, K] of [[1, 1], [3, 13], [17, 40], [65, 63], [9, 257]]) {
        const q = randomWeight(rng, v, N, K);
        const w = toDevice(dev, q);
        const t = dequantizeOnDevice(w);
        assert.deepEqual(t.shape, [N, K]);
        assertClose(await t.toArray(), q.dequantize(), dequantSlack(q), `${v.name} [${N},${K}]`);
        t.dispose();
        w.dispose();
      }
    }
  },
);

Deno.test("dequantizeOnDevice: webgpu equals the cpu twin bit for bit on exact formats", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const g = await gpu();
  const rng = new Rng(22);
  for (const v of VARIANTS) {
    const q = randomWeight(rng, v, 70, 131);
    const want = await dequantizeOnDevice(toDevice(cpu, q)).toArray();
    const w = toDevice(g, q);
    const got = await dequantizeOnDevice(w).toArray();
    w.dispose();
    // Twin decoders round at the same f32 steps; only WGSL's division may differ (2.5 ulp).
    assertClose(got, want, dequantSlack(q), `${v.name} gpu vs cpu`);
  }
});

bothBackends("DeviceWeight: bytes are the packed sizes", async (dev) => {
  await dev.sync();
  const rng = new Rng(23);
  const w = new Float32Array(1024 * 1024).map(() => rng.normal());
  // 4 bits + one f32 per 64 weights = 4.5; double-quantized: 4 + 8/64 + 32/(64·256) ≈ 4.127
  // (plus the f32 mean).
  const cases: [quant.QuantFormat, boolean, number][] = [
    ["f32", false, 32],
    ["f16", false, 16],
    ["int8", false, 8 + 32 / 2 ** 20],
    ["int8-row", false, 8 + 32 / 1024],
    ["nf4", false, 4.5],
    ["nf4", true, 4 + 8 / 64 + 32 / (64 * 256) + 32 / 2 ** 20],
    ["fp4", true, 4 + 8 / 64 + 32 / (64 * 256) + 32 / 2 ** 20],
  ];
  for (const [format, doubleQuant, bits] of cases) {
    const q = quant.quantize(w, [1024, 1024], format, { doubleQuant });
    const d = toDevice(dev, q);
    assert.equal(d.bytes, q.bytes, `${format} dq ${doubleQuant}: bytes`);
    assert.ok(Math.abs(d.bitsPerParameter - bits) < 1e-12, `${format}: ${d.bitsPerParameter}`);
    assert.ok(d.allocatedBytes >= d.bytes && d.allocatedBytes < d.bytes + 4 * 256);
    d.dispose();
  }
  // Ragged sizes: each array is padded to whole u32 words, nothing more.
  const odd = w.subarray(0, 7 * 9);
  assert.equal(toDevice(dev, quant.quantize(odd, [7, 9], "f16")).bytes, 64 * 2); // 63 -> 64 halves
  assert.equal(toDevice(dev, quant.quantize(odd, [7, 9], "int8")).bytes, 64 + 4);
  const nf4 = quant.quantize(odd, [7, 9], "nf4", { blockSize: 32, doubleQuant: true });
  // 2 blocks of 32 codes = 32 bytes; 2 8-bit codes -> 4 bytes; offset + 1 nested absmax = 8 bytes.
  assert.equal(toDevice(dev, nf4).bytes, 32 + 4 + 8);
});

bothBackends("DeviceWeight: shape, format, dispose", async (dev) => {
  const q = quant.quantize(new Float32Array(6 * 10).fill(0.25), [6, 10], "nf4");
  const w = toDevice(dev, q);
  assert.deepEqual(w.shape, [6, 10]);
  assert.equal(w.format, "nf4");
  assert.equal(w.numel, 60);
  if (dev.kind === "webgpu") {
    const engine = (dev as unknown as { engine: { liveBytes: number } }).engine;
    const before = engine.liveBytes;
    w.dispose();
    assert.equal(engine.liveBytes, before - w.allocatedBytes);
  } else w.dispose();
  w.dispose(); // idempotent
  assert.equal(w.disposed, true);
  assert.throws(() => dequantizeOnDevice(w), /after dispose/);
  await dev.sync();
});
