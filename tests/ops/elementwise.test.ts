import assert from "node:assert/strict";
import {
  add,
  div,
  exp,
  gelu,
  log,
  mul,
  neg,
  relu,
  Rng,
  scale,
  silu,
  sqrt,
  sub,
  type Tensor,
} from "../../lib/mod.ts";
import { assertClose, bothBackends, randData, t, U32 } from "../harness.ts";
import { broadcastRef, geluRef } from "../ref.ts";

/** x·σ(x) in float64. */
const siluRef = (v: number) => v / (1 + Math.exp(-v));

// add/sub/mul are correctly rounded in IEEE float32: |err| ≤ u·|exact|. WGSL allows division
// 2.5 ULP, so we allow 4u·|exact| for all four (plus a tiny floor for exact zeros).
const ops = [
  ["add", add, (x: number, y: number) => x + y],
  ["sub", sub, (x: number, y: number) => x - y],
  ["mul", mul, (x: number, y: number) => x * y],
  ["div", div, (x: number, y: number) => x / y],
] as const;

const shapePairs: [number[], number[]][] = [
  [[5, 7], [5, 7]],
  [[5, 7], [7]],
  [[5, 1], [1, 7]],
  [[2, 3, 4], [3, 1]],
  [[1], [3, 65]],
  [[2, 1, 3, 1, 5], [3, 4, 1]],
  [[300], []],
  [[2, 2, 2, 2, 2, 2, 3], [3]], // rank 7 collapses to ≤ 6
];

bothBackends("binary ops with broadcasting match float64", async (dev) => {
  const rng = new Rng(21);
  for (const [name, f, ref] of ops) {
    for (const [as, bs] of shapePairs) {
      const a = randData(rng, as.reduce((x, y) => x * y, 1));
      const b = randData(rng, bs.reduce((x, y) => x * y, 1)).map((
        v,
      ) => (name === "div" ? v + Math.sign(v) * 0.5 : v));
      const want = broadcastRef(ref, a, as, b, bs);
      const y = f(t(dev, a, as), t(dev, b, bs));
      assert.deepEqual(y.shape, want.shape, `${name} shape`);
      assertClose(
        await y.toArray(),
        want.out,
        want.out.map((v) => 4 * U32 * Math.abs(v) + 1e-30),
        `${name} ${as}⊕${bs}`,
      );
    }
  }
});

bothBackends("unary ops match float64", async (dev) => {
  const rng = new Rng(22);
  const n = 1000;
  const x = randData(rng, n, 3);
  const pos = x.map((v) => Math.fround(Math.abs(v) + 1e-3));
  // exp: WGSL allows 3 + 2|x| ULP; we allow (6 + 2|x|)·u relative. log: WGSL gives 2^-21
  // absolute near 1 and 3 ULP elsewhere; we allow 4e-7 absolute + 8u relative.
  // gelu composes tanh and exp: 1e-6 absolute + 1e-5 relative (f32 cancellation in 1 + tanh).
  const cases: [
    string,
    (a: Tensor) => Tensor,
    number[],
    (v: number) => number,
    (v: number, w: number) => number,
  ][] = [
    ["exp", exp, x, Math.exp, (v, w) => (6 + 2 * Math.abs(v)) * U32 * Math.abs(w)],
    ["log", log, pos, Math.log, (_v, w) => 4e-7 + 8 * U32 * Math.abs(w)],
    ["gelu", gelu, x, geluRef, (_v, w) => 1e-6 + 1e-5 * Math.abs(w)],
    ["neg", neg, x, (v) => -v, () => 0],
    ["sqrt", sqrt, pos, Math.sqrt, (_v, w) => 2 * U32 * w],
    ["relu", relu, x, (v) => Math.max(v, 0), () => 0],
    // silu = x·σ(x), σ from exp(-|x|): exp's error (as above) carried through 1/(1 + e) and
    // the product, plus two roundings: 1e-7 absolute + (8 + 2|x|)·u relative.
    ["silu", silu, x, siluRef, (v, w) => 1e-7 + (8 + 2 * Math.abs(v)) * U32 * Math.abs(w)],
    [
      "scale",
      (a) => scale(a, -0.37),
      x,
      (v) => v * Math.fround(-0.37),
      (_v, w) => U32 * Math.abs(w),
    ],
  ];
  for (const [name, f, input, ref, tl] of cases) {
    const want = input.map(ref);
    const got = await f(t(dev, input, [10, 100])).toArray();
    assertClose(got, want, want.map((w, i) => tl(input[i], w)), name);
  }
  // GELU stays finite far out (a naive tanh can give NaN there).
  const big = await gelu(t(dev, [-100, -20, 20, 100], [4])).toArray();
  assertClose(big, [0, 0, 20, 100], 1e-5, "gelu tails");
});

bothBackends("elementwise ops on large 1-D inputs fold workgroups correctly", async (dev) => {
  // 70,000 elements → 274 workgroups; checks the last elements are written.
  const n = 70_000;
  const a = Array.from({ length: n }, (_, i) => i % 1000);
  const y = await add(t(dev, a, [n]), t(dev, [1], [1])).toArray();
  assert.equal(y[n - 1], (n - 1) % 1000 + 1);
  assert.equal(y[0], 1);
});
