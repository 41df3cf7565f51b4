// The tape accumulates the gradient of a tensor used several times in place (Backend.accumulate)
// when it owns that gradient and nothing else sees it. Checked against hand-derived gradients on
// random data, on both backends, including a shared gradient (add passes g to both inputs), a
// reshape view, and a caller's seed, none of which may be overwritten.
import assert from "node:assert/strict";
import { add, mul, Rng, sum, Tape, Tensor } from "../../lib/mod.ts";
import { assertClose, bothBackends, randData } from "../harness.ts";

const close = (got: ArrayLike<number>, want: number[], what: string) =>
  assertClose(got, want, want.map((w) => 1e-6 + 1e-6 * Math.abs(w)), what);

bothBackends(
  "tape: a tensor used three times gets a + b + 1 (in-place accumulation)",
  async (dev) => {
    const rng = new Rng(5);
    const n = 37;
    const [xs, as, bs] = [randData(rng, n), randData(rng, n), randData(rng, n)];
    const x = Tensor.fromArray(xs, [n], { device: dev });
    const a = Tensor.fromArray(as, [n], { device: dev });
    const b = Tensor.fromArray(bs, [n], { device: dev });
    const tape = new Tape();
    tape.watch(x);
    // loss = Σ (x·a + x·b + x): dL/dx = a + b + 1, accumulated from three uses of x.
    const loss = tape.run(() => sum(add(add(mul(x, a), mul(x, b)), x), 0));
    const gx = tape.backward(loss).get(x)!;
    close(await gx.toArray(), as.map((v, i) => v + bs[i] + 1), "dx");
    // The inputs are untouched.
    assert.deepEqual([...await a.toArray()], as);
    assert.deepEqual([...await x.toArray()], xs);
  },
);

bothBackends("tape: shared and seed gradients are never overwritten in place", async (dev) => {
  const rng = new Rng(6);
  const n = 19;
  const [xs, ys, ws, seed] = [
    randData(rng, n),
    randData(rng, n),
    randData(rng, n),
    randData(rng, n),
  ];
  const x = Tensor.fromArray(xs, [n], { device: dev });
  const y = Tensor.fromArray(ys, [n], { device: dev });
  const w = Tensor.fromArray(ws, [n], { device: dev });
  const tape = new Tape();
  tape.watch(x, y);
  // s = x + y passes its gradient g to x and y (one tensor, two entries); then x and y are used
  // again, so each accumulates onto that shared g: an in-place add would corrupt the other.
  // out = s·w + x·w + y → dx = 2w, dy = w + 1.
  const out = tape.run(() => {
    const s = add(x, y);
    return add(add(mul(s, w), mul(x, w)), y.reshape([n]));
  });
  const g = Tensor.fromArray(seed, [n], { device: dev });
  const grads = tape.backward(out, g);
  close(await grads.get(x)!.toArray(), ws.map((v, i) => 2 * v * seed[i]), "dx");
  close(await grads.get(y)!.toArray(), ws.map((v, i) => (v + 1) * seed[i]), "dy");
  assert.deepEqual([...await g.toArray()], seed, "the caller's seed gradient");
});
