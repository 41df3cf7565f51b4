// Gradients of a tensor stored in row chunks (lib/ops/split.ts): a tape watches the chunks, and
// each chunk gets the rows of the unsplit gradient. Chunks of 7, 7, 7 and 2 rows over a 23-row
// table (Tensor.fromChunks), so chunk starts are odd and no size is a multiple of a workgroup.
import assert from "node:assert/strict";
import {
  type Backend,
  embedding,
  matmul,
  mul,
  Rng,
  setSplitBytes,
  sum,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { assertClose, bothBackends, randData, U32 } from "../harness.ts";
import { matmulRef } from "../ref.ts";

const ROWS = [7, 7, 7, 2]; // 23 rows

/** A [23, C] tensor from `data`, whole or in the chunks of {@link ROWS}. */
function table(dev: Backend, data: number[], C: number, split: boolean): Tensor {
  const V = data.length / C;
  if (!split) return Tensor.fromArray(data, [V, C], { device: dev });
  let r = 0;
  const chunks = ROWS.map((n) => {
    const c = Tensor.fromArray(data.slice(r * C, (r + n) * C), [n, C], { device: dev });
    r += n;
    return c;
  });
  return Tensor.fromChunks(chunks);
}

/**
 * The gradient of Σ f(w) ⊙ G with respect to w (whole or split), read back whole: the chunks'
 * gradients concatenated in row order.
 */
async function gradOf(w: Tensor, f: (w: Tensor) => Tensor, G: number[]): Promise<Float32Array> {
  const tape = new Tape();
  tape.watch(w);
  const loss = tape.run(() => {
    const y = f(w);
    const g = Tensor.fromArray(G, y.shape, { device: w.backend });
    return sum(mul(y, g).reshape([-1]), 0);
  });
  const grads = tape.backward(loss);
  const leaves = w.chunks ?? [w];
  assert.equal(grads.size, leaves.length, "one gradient per chunk");
  const parts = await Promise.all(leaves.map((c) => grads.get(c)!.toArray()));
  const out = new Float32Array(w.size);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Both gradients of `f` (whole and split w). */
async function wholeAndSplit(
  dev: Backend,
  data: number[],
  C: number,
  f: (w: Tensor) => Tensor,
  G: number[],
) {
  const whole = await gradOf(table(dev, data, C, false), f, G);
  const split = await gradOf(table(dev, data, C, true), f, G);
  return { whole, split };
}

/** Float32 dot products of k terms: |error| ≤ k·u·Σ|x·y| (plus a hair for the GPU's FMAs). */
const dotTol = (k: number, absDot: number[]) => absDot.map((s) => (k + 2) * U32 * s + 1e-30);

bothBackends(
  "split grads: embedding chunks get their rows' sums, as the whole table",
  async (dev) => {
    const rng = new Rng(71);
    const V = 23, C = 5, n = 3 * 11;
    const data = randData(rng, V * C), G = randData(rng, n * C);
    // Repeated ids (buckets of several positions) and ids at every chunk's edges.
    const idv = Array.from(
      { length: n },
      (_, i) => i < 8 ? [0, 6, 7, 13, 14, 20, 21, 22][i] : rng.int(V),
    );
    const ids = Tensor.fromArray(idv, [3, 11], { device: dev, dtype: "i32" });
    const { whole, split } = await wholeAndSplit(dev, data, C, (w) => embedding(ids, w), G);
    // Each entry sums its positions in position order, whole or per chunk: the same bits (the
    // WebGPU counting sort keeps that order too).
    assert.deepEqual(split, whole);
    const ref = new Array<number>(V * C).fill(0), abs = new Array<number>(V * C).fill(0);
    idv.forEach((v, i) => {
      for (let c = 0; c < C; c++) {
        ref[v * C + c] += G[i * C + c];
        abs[v * C + c] += Math.abs(G[i * C + c]);
      }
    });
    assertClose(split, ref, abs.map((s) => n * U32 * s), "dtable vs float64");
  },
);

bothBackends("split grads: x·Wᵀ (tied head) gives each chunk its rows of gᵀ·x", async (dev) => {
  const rng = new Rng(72);
  const V = 23, C = 6, B = 2, T = 9;
  const data = randData(rng, V * C), xd = randData(rng, B * T * C), G = randData(rng, B * T * V);
  const x = Tensor.fromArray(xd, [B, T, C], { device: dev });
  const { whole, split } = await wholeAndSplit(
    dev,
    data,
    C,
    (w) => matmul(x, w, { transB: true }),
    G,
  );
  // CPU: each entry is the same B·T-term dot product in the same order (exact). WebGPU: a chunk's
  // product [7, C] may run another tiling than the whole [23, C]: within the dot-product bound.
  const ref = matmulRef(G, xd, null, 1, V, C, B * T, true, false, 0, 0);
  if (dev.kind === "cpu") assert.deepEqual(split, whole);
  else assertClose(split, whole, dotTol(2 * B * T, ref.absDot), "split vs whole");
  assertClose(split, ref.out, dotTol(B * T, ref.absDot), "dW vs float64");
});

bothBackends("split grads: x·W (no transB) gives each chunk its rows of xᵀ·g", async (dev) => {
  const rng = new Rng(73);
  const K = 23, N = 4, rows = 13;
  const data = randData(rng, K * N), xd = randData(rng, rows * K), G = randData(rng, rows * N);
  const x = Tensor.fromArray(xd, [rows, K], { device: dev });
  const { whole, split } = await wholeAndSplit(dev, data, N, (w) => matmul(x, w), G);
  const ref = matmulRef(xd, G, null, 1, K, N, rows, true, false, 0, 0);
  if (dev.kind === "cpu") assert.deepEqual(split, whole);
  else assertClose(split, whole, dotTol(2 * rows, ref.absDot), "split vs whole");
  assertClose(split, ref.out, dotTol(rows, ref.absDot), "dW vs float64");
});

bothBackends(
  "split grads: a tied table (embedding, then x·Wᵀ) adds both per chunk",
  async (dev) => {
    const rng = new Rng(74);
    const V = 23, C = 5, n = 17;
    const data = randData(rng, V * C), G = randData(rng, n * V);
    const idv = Array.from({ length: n }, () => rng.int(V));
    const ids = Tensor.fromArray(idv, [n], { device: dev, dtype: "i32" });
    const f = (w: Tensor) => matmul(embedding(ids, w), w, { transB: true }); // [n, V]
    const { whole, split } = await wholeAndSplit(dev, data, C, f, G);
    // dW = Gᵀ·h (the head; h = W[ids]) + the rows of G·W scattered to ids (the embedding). The
    // second term's G·W sums its V terms chunk by chunk when W is split (another order), so the
    // two differ by a few roundings of that sum: within the V-term dot-product bound.
    const h = idv.flatMap((v) => data.slice(v * C, v * C + C));
    const head = matmulRef(G, h, null, 1, V, C, n, true, false, 0, 0);
    const gw = matmulRef(G, data, null, 1, n, C, V, false, false, 0, 0);
    const ref = [...head.out], bound = head.absDot.map((s) => (n + 2) * U32 * s);
    idv.forEach((v, i) => {
      for (let c = 0; c < C; c++) {
        ref[v * C + c] += gw.out[i * C + c];
        bound[v * C + c] += (V + n + 2) * U32 * gw.absDot[i * C + c];
      }
    });
    assertClose(split, whole, bound.map((b) => 2 * b), "split vs whole");
    assertClose(split, ref, bound, "dW vs float64");
  },
);

bothBackends("split grads: setSplitBytes chunks and a chunk no id falls in", async (dev) => {
  // [23, 4] f32 rows of 16 B; 112 B: 7 rows fit, 4 chunks of 6, 6, 6 and 5.
  const prev = setSplitBytes(112);
  let w: Tensor;
  const rng = new Rng(75);
  const data = randData(rng, 23 * 4);
  try {
    w = Tensor.fromArray(data, [23, 4], { device: dev });
  } finally {
    setSplitBytes(prev);
  }
  assert.deepEqual(w.chunks!.map((c) => c.shape[0]), [6, 6, 6, 5]);
  const ids = Tensor.fromArray([0, 5, 19, 5], [4], { device: dev, dtype: "i32" }); // none in 6…17
  const G = randData(rng, 4 * 4);
  const g = await gradOf(w, (t) => embedding(ids, t), G);
  const whole = await gradOf(
    Tensor.fromArray(data, [23, 4], { device: dev }),
    (t) => embedding(ids, t),
    G,
  );
  // The chunks without ids still get a (zero) gradient, as the whole table's rows do: the
  // optimizer updates every chunk as it would the whole tensor.
  assert.deepEqual(g, whole);
  assert.ok(g.subarray(6 * 4, 18 * 4).every((v) => v === 0));
});

bothBackends(
  "split matmul with a bias: the product, its bias gradient and dW as unsplit",
  async (dev) => {
    const rng = new Rng(76);
    const V = 23, C = 6, rows = 5;
    const data = randData(rng, V * C), xd = randData(rng, rows * C), bd = randData(rng, V);
    const G = randData(rng, rows * V);
    const x = Tensor.fromArray(xd, [rows, C], { device: dev });
    const out: Record<string, { y: Float32Array; db: Float32Array; dw: Float32Array }> = {};
    for (const split of [false, true]) {
      const w = table(dev, data, C, split);
      const bias = Tensor.fromArray(bd, [V], { device: dev });
      const tape = new Tape();
      tape.watch(w, bias);
      let y!: Tensor;
      const loss = tape.run(() => {
        y = matmul(x, w, { transB: true, bias }); // [rows, V]
        return sum(mul(y, Tensor.fromArray(G, [rows, V], { device: dev })).reshape([-1]), 0);
      });
      const grads = tape.backward(loss);
      const dw = new Float32Array(V * C);
      let o = 0;
      for (const c of w.chunks ?? [w]) {
        const a = await grads.get(c)!.toArray();
        dw.set(a, o);
        o += a.length;
      }
      out[String(split)] = {
        y: (await y.toArray()) as Float32Array,
        db: (await grads.get(bias)!.toArray()) as Float32Array,
        dw,
      };
    }
    const ref = matmulRef(xd, data, bd, 1, rows, V, C, false, true, 0, 0);
    assertClose(out.true.y, ref.out, dotTol(C + 1, ref.absDot), "y vs float64");
    assertClose(out.true.y, out.false.y, dotTol(2 * C + 2, ref.absDot), "y split vs whole");
    // The bias gradient is the column sum of G either way; dW as in the tests above.
    assertClose(
      out.true.db,
      out.false.db,
      out.false.db.map((v) => 4 * rows * U32 * (Math.abs(v) + 1)),
      "db",
    );
    const dref = matmulRef(G, xd, null, 1, V, C, rows, true, false, 0, 0);
    assertClose(out.true.dw, dref.out, dotTol(rows, dref.absDot), "dW vs float64");
  },
);
