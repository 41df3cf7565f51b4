import assert from "node:assert/strict";
import { max, mean, Rng, sum } from "../../lib/mod.ts";
import { assertClose, bothBackends, randData, t, U32 } from "../harness.ts";
import { ravel, unravel } from "../ref.ts";

function reduceRef(a: number[], shape: number[], axis: number, op: string) {
  const outShape = shape.filter((_, i) => i !== axis);
  const n = outShape.reduce((x, y) => x * y, 1);
  const out: number[] = [], absSum: number[] = [];
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, outShape);
    let s = 0, sa = 0, m = -Infinity;
    for (let l = 0; l < shape[axis]; l++) {
      const full = [...idx.slice(0, axis), l, ...idx.slice(axis)];
      const v = a[ravel(full, shape)];
      s += v;
      sa += Math.abs(v);
      m = Math.max(m, v);
    }
    out.push(op === "sum" ? s : op === "mean" ? s / shape[axis] : m);
    absSum.push(op === "mean" ? sa / shape[axis] : sa);
  }
  return { out, absSum, outShape };
}

bothBackends("sum/mean/max over every axis match float64", async (dev) => {
  const rng = new Rng(31);
  // Recursive f32 summation of L terms: |err| ≤ (L+1)·u·Σ|x| (mean adds one division).
  for (const shape of [[7], [3, 65], [4, 5, 6], [2, 1, 300], [1, 1]]) {
    const a = randData(rng, shape.reduce((x, y) => x * y, 1));
    for (let axis = 0; axis < shape.length; axis++) {
      for (const [name, f] of [["sum", sum], ["mean", mean], ["max", max]] as const) {
        const want = reduceRef(a, shape, axis, name);
        const y = f(t(dev, a, shape), axis);
        assert.deepEqual(y.shape, want.outShape);
        const L = shape[axis];
        const tl = name === "max" ? 0 : want.absSum.map((s) => (L + 2) * U32 * s + 1e-30);
        assertClose(await y.toArray(), want.out, tl, `${name} axis ${axis} of ${shape}`);
      }
    }
  }
  const k = sum(t(dev, [1, 2, 3, 4, 5, 6], [2, 3]), -1, { keepDims: true });
  assert.deepEqual(k.shape, [2, 1]);
  assert.deepEqual([...await k.toArray()], [6, 15]);
  assert.throws(() => sum(t(dev, [1], [1]), 2), /axis 2 is out of range for 1 dims/);
});
