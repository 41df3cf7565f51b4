import assert from "node:assert/strict";
import { cast, concat, narrow, permute, Rng, Tensor, transpose } from "../../lib/mod.ts";
import { assertClose, bothBackends, randData, t } from "../harness.ts";
import { ravel, unravel } from "../ref.ts";

bothBackends("permute, transpose and narrow move data exactly", async (dev) => {
  const rng = new Rng(51);
  const shape = [2, 3, 4, 5];
  const a = randData(rng, 120);
  const dims = [2, 0, 3, 1];
  const p = permute(t(dev, a, shape), dims);
  assert.deepEqual(p.shape, [4, 2, 5, 3]);
  const want = Array.from({ length: 120 }, (_, i) => {
    const o = unravel(i, p.shape as number[]);
    const src = new Array(4);
    dims.forEach((d, k) => (src[d] = o[k]));
    return a[ravel(src, shape)];
  });
  assertClose(await p.toArray(), want, 0, "permute");
  const tr = await transpose(t(dev, [1, 2, 3, 4, 5, 6], [2, 3])).toArray();
  assert.deepEqual([...tr], [1, 4, 2, 5, 3, 6]);
  const n = narrow(t(dev, a, shape), 2, 1, 2);
  assert.deepEqual(n.shape, [2, 3, 2, 5]);
  const nw = Array.from({ length: 60 }, (_, i) => {
    const o = unravel(i, [2, 3, 2, 5]);
    return a[ravel([o[0], o[1], o[2] + 1, o[3]], shape)];
  });
  assertClose(await n.toArray(), nw, 0, "narrow");
  assert.throws(() => narrow(t(dev, a, shape), 2, 3, 2), /\[3, 5\) is outside axis 2/);
  assert.throws(() => permute(t(dev, a, shape), [0, 0, 1, 2]), /not a permutation/);
  // i32 data moves too.
  const ids = permute(Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3], { device: dev, dtype: "i32" }), [
    1,
    0,
  ]);
  assert.deepEqual([...await ids.toArray()], [1, 4, 2, 5, 3, 6]);
});

bothBackends("f32 → f16 → f32 casts round to nearest even", async (dev) => {
  if (!dev.hasF16) throw new Error(`${dev.description} lacks shader-f16; lavapipe should have it`);
  const rng = new Rng(52);
  const xs = [3.14159, 65504, 65520, 1e-8, -0.0001, 2049, 2051, ...randData(rng, 97, 100)];
  const h = cast(t(dev, xs, [xs.length]), "f16");
  assert.equal(h.dtype, "f16");
  const back = await cast(h, "f32").toArray();
  // Math.f16round is the independent reference (IEEE binary16, ties to even).
  const want = xs.map((x) => Math.f16round(x));
  assertClose(back, want, 0, "f16 round trip");
  assert.equal(back[0], 3.140625);
  assert.equal(back[2], Infinity); // 65520 rounds up past the largest f16
  const h2 = await h.toArray();
  assert.ok(h2 instanceof Float16Array);
});

bothBackends("concat joins exactly along any axis; shapes are checked", async (dev) => {
  const rng = new Rng(52);
  for (const axis of [0, 1, 2]) {
    const sa = [2, 3, 4], sb = [2, 3, 4].map((d, i) => (i === axis ? d + 2 : d));
    const a = randData(rng, 24), b = randData(rng, sb.reduce((x, y) => x * y, 1));
    const y = concat(t(dev, a, sa), t(dev, b, sb), axis);
    assert.deepEqual(y.shape, sa.map((d, i) => (i === axis ? d + sb[i] : d)));
    // Narrowing the result back gives both inputs bit for bit (each sum had one zero term).
    assert.deepEqual(Array.from(await narrow(y, axis, 0, sa[axis]).toArray()), a);
    assert.deepEqual(Array.from(await narrow(y, axis, sa[axis], sb[axis]).toArray()), b);
  }
  assert.throws(
    () => concat(t(dev, [1, 2], [1, 2]), t(dev, [1, 2, 3], [3, 1]), 0),
    /differ outside/,
  );
});
