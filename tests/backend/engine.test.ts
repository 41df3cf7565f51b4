import assert from "node:assert/strict";
import { add, exp, scale, Tensor, type WebGpuBackend } from "../../lib/mod.ts";
import { MAX_BATCH } from "../../lib/backend/webgpu/engine.ts";
import { gpu } from "../harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("engine: more dispatches than one batch flush correctly", opts, async () => {
  const dev = await gpu();
  let x = Tensor.fromArray([1, 2, 3], [3], { device: dev });
  const n = MAX_BATCH * 2 + 7;
  for (let i = 0; i < n; i++) {
    const y = add(x, Tensor.fromArray([1], [1], { device: dev }));
    x.dispose();
    x = y;
  }
  assert.deepEqual([...await x.toArray()], [1 + n, 2 + n, 3 + n]);
});

Deno.test(
  "engine: an upload into a recycled buffer cannot overtake recorded work",
  opts,
  async () => {
    const dev = await gpu();
    const a = Tensor.fromArray([0, 1, 2, 3], [4], { device: dev });
    const b = scale(a, 2); // recorded, not yet submitted, reads a's buffer
    a.dispose(); // a's buffer goes back to the pool...
    const c = Tensor.fromArray([100, 100, 100, 100], [4], { device: dev }); // ...and is reused here
    assert.deepEqual([...await b.toArray()], [0, 2, 4, 6]);
    assert.deepEqual([...await c.toArray()], [100, 100, 100, 100]);
  },
);

Deno.test("engine: the pool recycles buffers and dispose returns them", opts, async () => {
  const dev = (await gpu()) as WebGpuBackend;
  const eng = dev.engine;
  await dev.sync();
  const before = eng.liveBytes;
  const x = Tensor.randn([1000], { device: dev, seed: 1 });
  const y = exp(x);
  assert.ok(eng.liveBytes >= before + 8000);
  x.dispose();
  y.dispose();
  assert.equal(eng.liveBytes, before);
  const z = Tensor.randn([1000], { device: dev, seed: 2 }); // same size class: reused, not new
  assert.equal(eng.liveBytes, before + 4096);
  z.dispose();
});

Deno.test("engine: pipelines are cached by kernel key", opts, async () => {
  const dev = (await gpu()) as WebGpuBackend;
  const x = Tensor.fromArray([1, 2], [2], { device: dev });
  exp(x);
  await dev.sync();
  // deno-lint-ignore no-explicit-any
  const cache = (dev.engine as any).pipelines as Map<string, GPUComputePipeline>;
  const p = cache.get("unary:exp");
  assert.ok(p);
  exp(x);
  assert.equal(cache.get("unary:exp"), p);
});
