import assert from "node:assert/strict";
import { add, cpu, exp, Rng, scope, Tensor } from "../lib/mod.ts";
import { bothBackends } from "./harness.ts";

bothBackends("fromArray / toArray round trip, zeros, item, reshape", async (dev) => {
  const x = Tensor.fromArray([1.5, -2, 3, 4, 5, 6], [2, 3], { device: dev });
  assert.deepEqual(x.shape, [2, 3]);
  assert.equal(x.size, 6);
  assert.equal(x.bytes, 24);
  assert.deepEqual([...await x.toArray()], [1.5, -2, 3, 4, 5, 6]);
  const r = x.reshape([3, -1]);
  assert.deepEqual(r.shape, [3, 2]);
  x.dispose();
  assert.deepEqual([...await r.toArray()], [1.5, -2, 3, 4, 5, 6]); // view keeps storage alive
  assert.deepEqual([...await Tensor.zeros([5], { device: dev }).toArray()], [0, 0, 0, 0, 0]);
  assert.equal(await Tensor.fromArray([7], [], { device: dev }).item(), 7);
  assert.throws(() => r.reshape([4, 2]), /reshape: \[3,2\] \(6\) cannot become \[4,2\]/);
  assert.throws(
    () => Tensor.fromArray([1, 2, 3], [2, 2], { device: dev }),
    /3 values do not fill shape \[2,2\]/,
  );
  assert.throws(() => Tensor.zeros([2, -1]), /bad shape/);
  assert.throws(() => Tensor.fromArray([1.5], [1], { device: dev, dtype: "i32" }), /not an i32/);
  const zeroSize = Tensor.zeros([0, 3], { device: dev });
  assert.equal((await zeroSize.toArray()).length, 0);
});

Deno.test("randn and uniform are seeded, reproducible and have the right moments", async () => {
  const a = Array.from(await Tensor.randn([20000], { seed: 5 }).toArray());
  const b = await Tensor.randn([20000], { seed: 5 }).toArray();
  const c = await Tensor.randn([20000], { seed: 6 }).toArray();
  assert.deepEqual(a, Array.from(b));
  assert.notDeepEqual(a, Array.from(c));
  const m = a.reduce((s, x) => s + x, 0) / a.length;
  const v = a.reduce((s, x) => s + (x - m) ** 2, 0) / a.length;
  // Standard errors: mean 1/√n ≈ 0.007, variance √(2/n) ≈ 0.01; allow 5σ.
  assert.ok(Math.abs(m) < 0.035, `mean ${m}`);
  assert.ok(Math.abs(v - 1) < 0.05, `var ${v}`);
  const u = Array.from(await Tensor.uniform([20000], { seed: 7, low: -2, high: 3 }).toArray());
  assert.ok(u.every((x) => x >= -2 && x < 3));
  const um = u.reduce((s, x) => s + x, 0) / u.length;
  assert.ok(Math.abs(um - 0.5) < 5 * 5 / Math.sqrt(12 * 20000), `uniform mean ${um}`);
});

Deno.test("Rng state save/restore continues the exact stream", () => {
  const r = new Rng(99);
  for (let i = 0; i < 7; i++) r.normal();
  const st = r.getState();
  const xs = Array.from({ length: 10 }, () => r.normal());
  const r2 = new Rng(0);
  r2.setState(st);
  assert.deepEqual(Array.from({ length: 10 }, () => r2.normal()), xs);
});

bothBackends("scope disposes temporaries and keeps what it returns", async (dev) => {
  const x = Tensor.fromArray([1, 2, 3], [3], { device: dev });
  let tmp: Tensor | undefined;
  const y = scope(() => {
    tmp = exp(x);
    return add(tmp, x);
  });
  assert.ok(tmp!.disposed);
  assert.ok(!y.disposed && !x.disposed);
  assert.deepEqual([...await y.toArray()].map((v) => Math.round(v * 1000)), [3718, 9389, 23086]);
  const { a, b } = await scope(async () => {
    const inner = exp(x);
    await inner.toArray();
    return { a: add(inner, inner), b: Tensor.zeros([1], { device: dev }) };
  });
  assert.ok(!a.disposed && !b.disposed);
  assert.throws(() =>
    scope(() => {
      exp(x);
      throw new Error("boom");
    }), /boom/);
  const d = Tensor.zeros([1], { device: dev });
  d.dispose();
  assert.throws(() => d.storage, /used after dispose/);
});

Deno.test("ops refuse tensors from different backends", async () => {
  const { getDevice } = await import("../lib/mod.ts");
  const g = await getDevice({ backend: "webgpu" });
  const a = Tensor.zeros([2], { device: cpu }), b = Tensor.zeros([2], { device: g });
  assert.throws(() => add(a, b), /different backends \(cpu and webgpu\)/);
});
