/**
 * Loading a Hugging Face checkpoint with `quantize: "nf4"` onto WebGPU quantizes on the device
 * (issue 16, item 1): one `quantize4` dispatch per block linear (the engine's dispatch counts),
 * the double-quantization arrays equal the CPU-loaded model's bit for bit, the codes equal them
 * but at near-ties (tests/quant/quantize_webgpu.test.ts; none differ here), and the logits equal
 * the CPU-loaded model's within 1e-4·(1 + max|logit|), the tolerance of the cross-backend logit
 * tests of tests/hf/models.test.ts (f32 products in another order; the measured error is printed).
 * Llama's nn.Linear [out, in] and GPT-2's Conv1D [in, out] (transposed before quantizing) both.
 */

import assert from "node:assert/strict";
import type { WebGpuBackend } from "../../lib/backend/webgpu/webgpu_backend.ts";
import { cpu, QuantLinear } from "../../lib/mod.ts";
import { loadHfWeights } from "../../lib/io/mod.ts";
import { gpu } from "../harness.ts";
import {
  gpt2Config,
  gpt2Weights,
  llamaConfig,
  llamaWeights,
  logits,
  writeCheckpoint,
} from "./fixtures.ts";

const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

for (const family of ["llama", "gpt2"] as const) {
  Deno.test({
    name:
      `HF load ${family} quantize nf4 on WebGPU: quantized on the device, logits ≈ CPU's [webgpu]`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const dev = await gpu();
      const engine = (dev as WebGpuBackend).engine;
      const dir = await Deno.makeTempDir();
      const cfg = family === "llama"
        ? llamaConfig({ hidden_size: 64, intermediate_size: 136 })
        : gpt2Config();
      const w = family === "llama" ? llamaWeights(cfg, 6, "F32") : gpt2Weights(cfg, 6, "F32");
      await writeCheckpoint(dir, cfg, w);
      const ref = (await loadHfWeights(dir, cpu, { quantize: "nf4" })).model;
      const key = "quantize4:nf4:b64";
      const before = engine.dispatchesByKernel.get(key) ?? 0;
      const got = (await loadHfWeights(dir, dev, { quantize: "nf4" })).model;
      const linears = [...got.linears()];
      assert.ok(linears.length > 0 && linears.every(([, l]) => l instanceof QuantLinear));
      assert.equal(
        (engine.dispatchesByKernel.get(key) ?? 0) - before,
        linears.length,
        "one quantize4 dispatch per block linear: quantized on the device",
      );
      let diff = 0, numel = 0;
      for (const [path, l] of linears) {
        const g = (l as QuantLinear).weight;
        const r = (ref.linears().get(path) as QuantLinear).weight;
        assert.deepEqual(g.layout, r.layout, path);
        assert.equal(g.bytes, r.bytes, path);
        const a = r.hostArrays();
        const bufs = g.gpuBuffers();
        const [codes, dqCodes, dqScales] = await engine.readMany([
          { buf: bufs[0], bytes: a.data.byteLength },
          { buf: bufs[1], bytes: a.dqCodes!.byteLength },
          { buf: bufs[2], bytes: a.dqScales!.byteLength },
        ]);
        assert.deepEqual(new Uint32Array(dqCodes), a.dqCodes, `${path}: dq codes`);
        assert.deepEqual(new Uint32Array(dqScales), u32(a.dqScales!), `${path}: dq scales`);
        const c = new Uint32Array(codes);
        for (let i = 0; i < g.numel; i++) {
          if (((c[i >>> 3] ^ a.data[i >>> 3]) >>> (4 * (i & 7))) & 15) diff++;
        }
        numel += g.numel;
      }
      assert.ok(diff <= 2 + numel * 1e-5, `${diff} of ${numel} codes differ`);
      const ids = [3, 17, 200, 42, 1, 99, 5, 64, 64, 12].map((i) => i % (cfg.vocab_size as number));
      const yg = await logits(dev, got, ids), yc = await logits(cpu, ref, ids);
      let err = 0, scale = 0;
      for (let i = 0; i < yc.length; i++) {
        err = Math.max(err, Math.abs(yg[i] - yc[i]));
        scale = Math.max(scale, Math.abs(yc[i]));
      }
      console.log(
        `${family} nf4: ${diff} of ${numel} codes differ; logits max |GPU − CPU| ` +
          `${err.toExponential(2)} (scale ${scale.toFixed(2)})`,
      );
      assert.ok(err <= 1e-4 * (1 + scale), `logits differ by ${err}`);
      got.dispose();
      ref.dispose();
      await Deno.remove(dir, { recursive: true });
    },
  });
}
