// QuantLinear.fromLinear (what preparePeft's qlora uses on any base) quantizes 4-bit formats on
// the device where the backend can (WebGPU: the quantize4 kernel), as the loader does.
import assert from "node:assert/strict";
import type { WebGpuBackend } from "../../lib/backend/webgpu/webgpu_backend.ts";
import { cpu, Linear, QuantLinear, Rng, Tensor } from "../../lib/mod.ts";
import { assertClose, gpu, randData } from "../harness.ts";

Deno.test({
  name:
    "QuantLinear.fromLinear: nf4 on WebGPU runs the device quantizer; products match the CPU's [webgpu]",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dev = await gpu();
    const engine = (dev as WebGpuBackend).engine;
    const rng = new Rng(8);
    const I = 96, O = 40; // numel 3840: 60 blocks of 64
    const w = randData(rng, O * I), x = randData(rng, 3 * I);
    const key = "quantize4:nf4:b64";
    const before = engine.dispatchesByKernel.get(key) ?? 0;
    const ys: Float32Array[] = [];
    for (const d of [dev, cpu]) {
      const lin = new Linear(Tensor.fromArray(w, [O, I], { device: d }), null, "out_in");
      const q = await QuantLinear.fromLinear(lin, { format: "nf4" });
      ys.push(
        (await q.forward(Tensor.fromArray(x, [3, I], { device: d })).toArray()) as Float32Array,
      );
    }
    assert.equal((engine.dispatchesByKernel.get(key) ?? 0) - before, 1, "quantized on the device");
    // Same codes but at near-ties (quantize_webgpu.ts): products agree to f32 summation, 1e-5.
    assertClose(ys[0], Array.from(ys[1]), 1e-5 * Math.max(...Array.from(ys[1], Math.abs)), "y");
  },
});
