import assert from "node:assert/strict";
import { add, exp, scale, Tensor } from "../../lib/mod.ts";
import type { WebGpuBackend } from "../../lib/backend/webgpu/mod.ts";
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

Deno.test("engine: the profiler times each dispatch by kernel key", opts, async () => {
  const dev = (await gpu()) as WebGpuBackend;
  const eng = dev.engine;
  assert.ok(eng.hasTimestamps, `${eng.description}: no timestamp-query`);
  await assert.rejects(() => eng.stopProfile(), /no profile is running/);
  const x = Tensor.randn([64 * 1024], { device: dev, seed: 2 });
  const d0 = eng.dispatches;
  eng.startProfile();
  assert.throws(() => eng.startProfile(), /already running/);
  // More dispatches than one batch: the timestamps of several submits are gathered.
  let y = x;
  const n = MAX_BATCH + 9;
  for (let i = 0; i < n; i++) {
    const z = scale(y, 1.0001);
    if (y !== x) y.dispose();
    y = z;
  }
  const e = exp(y);
  const times = await eng.stopProfile();
  assert.equal(eng.dispatches - d0, n + 1);
  const byKey = new Map(times.map((t) => [t.key, t]));
  assert.equal(times.reduce((s, t) => s + t.count, 0), n + 1);
  assert.equal(byKey.get("unary:scale")?.count, n, `keys: ${times.map((t) => t.key)}`);
  assert.equal(byKey.get("unary:exp")?.count, 1);
  for (const t of times) assert.ok(t.ms >= 0 && Number.isFinite(t.ms), `${t.key}: ${t.ms} ms`);
  assert.ok(times.some((t) => t.ms > 0), "no dispatch took measurable GPU time");
  // Profiling leaves results alone, and after it dispatches share passes again.
  const want = Math.exp(Math.fround(Math.pow(1.0001, n)) * (await x.toArray())[0]);
  assert.ok(Math.abs((await e.toArray())[0] - want) <= 1e-3 * Math.abs(want) + 1e-6);
  const again = scale(x, 2);
  assert.equal((await again.toArray())[0], 2 * (await x.toArray())[0]);
  for (const t of [x, y, e, again]) t.dispose();
});
