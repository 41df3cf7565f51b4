/**
 * Masked cross-entropy (targets of -100 skipped, mean over the rest) on both backends, against a
 * float64 reference of the loss and of d loss / d logits, on random logits, random masks and
 * shapes that are not multiples of the 64-thread row workgroup; plus the all-masked batch, the
 * unmasked path's bits, and the errors.
 */

import assert from "node:assert/strict";
import { crossEntropy, crossEntropyRows, IGNORE_INDEX, Rng, Tape, Tensor } from "../../lib/mod.ts";
import { assertClose, bothBackends, randData, t } from "../harness.ts";

/** float64 loss and gradient of the masked mean: rows with target -100 give nothing. */
function maskedRef(logits: number[], targets: number[], V: number) {
  const N = targets.length;
  const count = targets.filter((k) => k !== IGNORE_INDEX).length;
  const rows: number[] = [], grad = new Array<number>(N * V).fill(0);
  let total = 0;
  for (let r = 0; r < N; r++) {
    const k = targets[r];
    if (k === IGNORE_INDEX) {
      rows.push(0);
      continue;
    }
    const row = logits.slice(r * V, (r + 1) * V);
    const m = Math.max(...row);
    const z = row.reduce((s, x) => s + Math.exp(x - m), 0);
    const l = Math.log(z) + m - row[k];
    rows.push(l);
    total += l;
    for (let c = 0; c < V; c++) {
      grad[r * V + c] = (Math.exp(row[c] - m) / z - (c === k ? 1 : 0)) / count;
    }
  }
  return { rows, loss: count > 0 ? total / count : 0, grad, count };
}

/** Loss and gradient from the library, with `count` given. */
async function lossAndGrad(
  dev: Parameters<Parameters<typeof bothBackends>[1]>[0],
  logits: number[],
  targets: number[],
  shape: number[],
  count: number,
) {
  const V = shape[shape.length - 1];
  const L = t(dev, logits, shape);
  const T = Tensor.fromArray(targets, shape.slice(0, -1), { device: dev, dtype: "i32" });
  const tape = new Tape();
  tape.watch(L);
  const loss = tape.run(() => crossEntropy(L, T, { count }));
  const g = tape.backward(loss).get(L)!;
  const out = {
    loss: await loss.item(),
    grad: Array.from(await g.toArray() as Float32Array),
    rows: Array.from(await crossEntropyRows(L, T, { ignore: true }).toArray() as Float32Array),
  };
  for (const x of [L, T, loss, g]) x.dispose();
  assert.equal(out.grad.length, targets.length * V);
  return out;
}

bothBackends(
  "masked crossEntropy: mean over unmasked targets, zero gradient on masked rows (float64)",
  async (dev) => {
    const rng = new Rng(171);
    // [B, T, V]: rows (B·T) and V below, at and above the 64-thread workgroup, none a multiple of it
    // except where noted; mask rates from none to all.
    const cases: [number[], number][] = [
      [[1, 1, 5], 0.5],
      [[2, 7, 257], 0.3],
      [[3, 5, 63], 0.9],
      [[1, 70, 65], 0.5],
      [[2, 33, 100], 0.0], // nothing masked: count = size takes the unmasked path
      [[4, 9, 129], 1.0], // everything masked
      [[1, 64, 64], 0.2],
    ];
    for (const [shape, rate] of cases) {
      const V = shape[shape.length - 1];
      const N = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const logits = randData(rng, N * V, 3);
      const targets = Array.from(
        { length: N },
        () => rng.uniform() < rate ? IGNORE_INDEX : rng.int(V),
      );
      const ref = maskedRef(logits, targets, V);
      const got = await lossAndGrad(dev, logits, targets, shape, ref.count);
      const what = `${dev.kind} [${shape}] masked ${N - ref.count}/${N}`;
      // Per-row: f32 logsumexp of |x| ≤ ~15 → ~2e-6 relative; masked rows exactly 0.
      assertClose(got.rows, ref.rows, 2e-5, `${what}: per-row losses`);
      for (let r = 0; r < N; r++) {
        if (targets[r] === IGNORE_INDEX) assert.equal(got.rows[r], 0, `${what}: masked row ${r}`);
      }
      assertClose([got.loss], [ref.loss], 2e-5 * Math.max(1, ref.loss), `${what}: loss`);
      assertClose(got.grad, ref.grad, 1e-6, `${what}: gradient`);
      for (let r = 0; r < N; r++) {
        if (targets[r] !== IGNORE_INDEX) continue;
        for (let c = 0; c < V; c++) {
          assert.equal(got.grad[r * V + c], 0, `${what}: masked row ${r} gradient`);
        }
      }
      if (ref.count === 0) {
        assert.equal(got.loss, 0, `${what}: all masked gives loss 0`);
      } else {
        assert.ok(ref.loss > 0.5, `${what}: the reference is not trivial (${ref.loss})`);
      }
    }
  },
);

bothBackends(
  "masked crossEntropy: count = all targets is the unmasked path, bit for bit",
  async (dev) => {
    const rng = new Rng(172);
    const N = 37, V = 91;
    const logits = randData(rng, N * V, 2);
    const targets = Array.from({ length: N }, () => rng.int(V));
    const L = t(dev, logits, [N, V]);
    const T = Tensor.fromArray(targets, [N], { device: dev, dtype: "i32" });
    const run = async (opts?: { count: number }) => {
      const tape = new Tape();
      tape.watch(L);
      const loss = tape.run(() => crossEntropy(L, T, opts));
      const g = tape.backward(loss).get(L)!;
      return { loss: await loss.item(), grad: await g.toArray() };
    };
    const plain = await run(), counted = await run({ count: N });
    assert.equal(counted.loss, plain.loss);
    assert.deepEqual(counted.grad, plain.grad);
    // The masked path with nothing masked agrees to rounding (Σ·(1/N) against the mean).
    const masked = maskedRef(logits, targets, V);
    assertClose([plain.loss], [masked.loss], 2e-5, "unmasked loss against float64");
  },
);

bothBackends("masked crossEntropy: bad counts and targets", async (dev) => {
  const L = t(dev, [0.5, -1, 2, 0, 1, 3], [2, 3]);
  const T = Tensor.fromArray([IGNORE_INDEX, 1], [2], { device: dev, dtype: "i32" });
  for (const count of [-1, 3, 0.5, NaN]) {
    assert.throws(() => crossEntropy(L, T, { count }), /count .* is not an integer in \[0, 2\]/);
  }
  // count 1: row 0 is masked; loss = row 1 alone = logsumexp([0, 1, 3]) - 1.
  const want = Math.log(Math.exp(0) + Math.exp(1) + Math.exp(3)) - 1;
  assertClose([await crossEntropy(L, T, { count: 1 }).item()], [want], 2e-6, "one unmasked row");
  if (dev.kind === "cpu") {
    // Without count, -100 is just an out-of-range target; other negatives never are masks.
    assert.throws(() => crossEntropy(L, T), /target -100 at row 0 is outside \[0, 3\)/);
    const neg = Tensor.fromArray([-5, 1], [2], { device: dev, dtype: "i32" });
    assert.throws(() => crossEntropy(L, neg, { count: 1 }), /target -5 at row 0/);
  } else {
    // WebGPU cannot throw: an out-of-range target gives NaN, as before.
    const neg = Tensor.fromArray([-5, 1], [2], { device: dev, dtype: "i32" });
    assert.ok(Number.isNaN(await crossEntropy(L, neg, { count: 1 }).item()));
    assert.ok(Number.isNaN(await crossEntropy(L, T).item()));
  }
});
