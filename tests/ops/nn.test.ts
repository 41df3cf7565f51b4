import assert from "node:assert/strict";
import {
  causalSelfAttention,
  crossEntropy,
  crossEntropyRows,
  embedding,
  layerNorm,
  logSoftmax,
  Rng,
  softmax,
  Tensor,
} from "../../lib/mod.ts";
import { assertClose, bothBackends, randData, t } from "../harness.ts";
import { layerNormRef, softmaxRef } from "../ref.ts";

bothBackends("softmax and log-softmax (plain and causal) match float64", async (dev) => {
  const rng = new Rng(41);
  for (const [rows, cols] of [[1, 1], [3, 7], [5, 300], [20, 65]]) {
    const a = randData(rng, rows * cols, 4);
    for (const log of [false, true]) {
      const f = log ? logSoftmax : softmax;
      // softmax values ≤ 1: exp/sum errors give ~1e-6 absolute; log-softmax adds |x| rounding.
      const tl = log ? 1e-5 : 2e-6;
      assertClose(
        await f(t(dev, a, [rows, cols])).toArray(),
        softmaxRef(a, rows, cols, log, false),
        tl,
        `${log ? "log" : ""}softmax ${rows}x${cols}`,
      );
    }
  }
  const T = 9, H = 3;
  const a = randData(rng, H * T * T, 3);
  for (const log of [false, true]) {
    const f = log ? logSoftmax : softmax;
    const got = await f(t(dev, a, [H, T, T]), { causal: true }).toArray();
    assertClose(got, softmaxRef(a, H * T, T, log, true), 1e-5, `causal ${log}`);
  }
  assert.throws(() => softmax(t(dev, [1, 2], [1, 2]), { causal: true }), /causal needs square/);
});

bothBackends("layerNorm matches float64", async (dev) => {
  const rng = new Rng(42);
  for (const [rows, C] of [[1, 1], [4, 7], [33, 64], [3, 257]]) {
    const x = randData(rng, rows * C, 2).map((v) => Math.fround(v + 3)); // non-zero mean
    const g = randData(rng, C), b = randData(rng, C);
    const y = layerNorm(t(dev, x, [rows, C]), t(dev, g, [C]), t(dev, b, [C]), 1e-5);
    // Normalised values are O(1)·|g|; f32 mean/variance over C terms: 2e-5 absolute.
    assertClose(
      await y.toArray(),
      layerNormRef(x, g, b, rows, C, 1e-5),
      2e-5,
      `layerNorm ${rows}x${C}`,
    );
  }
  assert.throws(
    () => layerNorm(t(dev, [1, 2], [1, 2]), t(dev, [1], [1]), t(dev, [1, 1], [2])),
    /gamma \[1\] should be \[2\]/,
  );
});

bothBackends("embedding gathers rows", async (dev) => {
  const rng = new Rng(43);
  const V = 37, C = 11;
  const table = randData(rng, V * C);
  const ids = Array.from({ length: 2 * 5 }, () => rng.int(V));
  const y = embedding(
    Tensor.fromArray(ids, [2, 5], { device: dev, dtype: "i32" }),
    t(dev, table, [V, C]),
  );
  assert.deepEqual(y.shape, [2, 5, C]);
  const want = ids.flatMap((id) => table.slice(id * C, id * C + C));
  assertClose(await y.toArray(), want, 0, "embedding (exact copy)");
});

bothBackends("crossEntropy matches float64", async (dev) => {
  const rng = new Rng(44);
  const N = 13, V = 257;
  const logits = randData(rng, N * V, 3);
  const tg = Array.from({ length: N }, () => rng.int(V));
  const want = tg.map((k, r) => {
    const row = logits.slice(r * V, (r + 1) * V);
    const m = Math.max(...row);
    return Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0)) + m - row[k];
  });
  const L = t(dev, logits, [N, V]), T = Tensor.fromArray(tg, [N], { device: dev, dtype: "i32" });
  assertClose(await crossEntropyRows(L, T).toArray(), want, 2e-5, "per-row CE");
  const meanWant = want.reduce((s, x) => s + x, 0) / N;
  assertClose([await crossEntropy(L, T).item()], [meanWant], 2e-5, "mean CE");
  assert.throws(
    () => crossEntropy(L, Tensor.fromArray([1, 2], [2], { device: dev, dtype: "i32" })),
    /disagree/,
  );
});

bothBackends("causalSelfAttention matches a float64 loop", async (dev) => {
  const rng = new Rng(45);
  for (const [B, T, nh, hd] of [[1, 1, 1, 4], [2, 7, 3, 5], [1, 70, 2, 8]]) {
    const C = nh * hd;
    const q = randData(rng, B * T * C), k = randData(rng, B * T * C), v = randData(rng, B * T * C);
    const want = new Array(B * T * C).fill(0);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < nh; h++) {
        for (let i = 0; i < T; i++) {
          const s: number[] = [];
          for (let j = 0; j <= i; j++) {
            let d = 0;
            for (let c = 0; c < hd; c++) {
              d += q[(b * T + i) * C + h * hd + c] * k[(b * T + j) * C + h * hd + c];
            }
            s.push(d / Math.sqrt(hd));
          }
          const m = Math.max(...s), z = s.reduce((acc, x) => acc + Math.exp(x - m), 0);
          for (let j = 0; j <= i; j++) {
            const p = Math.exp(s[j] - m) / z;
            for (let c = 0; c < hd; c++) {
              want[(b * T + i) * C + h * hd + c] += p * v[(b * T + j) * C + h * hd + c];
            }
          }
        }
      }
    }
    const y = causalSelfAttention(
      t(dev, q, [B, T, C]),
      t(dev, k, [B, T, C]),
      t(dev, v, [B, T, C]),
      nh,
    );
    assert.deepEqual(y.shape, [B, T, C]);
    // Probabilities carry ~1e-6 error each; outputs are convex mixes of |v| ≲ 4.
    assertClose(await y.toArray(), want, 2e-5, `attention B${B} T${T} nh${nh} hd${hd}`);
  }
  assert.throws(
    () =>
      causalSelfAttention(
        t(dev, [0, 0, 0], [1, 1, 3]),
        t(dev, [0, 0, 0], [1, 1, 3]),
        t(dev, [0, 0, 0], [1, 1, 3]),
        2,
      ),
    /not divisible/,
  );
});

bothBackends("bad ids and targets: CPU throws, WebGPU gives NaN", async (dev) => {
  const table = t(dev, [1, 2, 3, 4], [2, 2]);
  const ids = Tensor.fromArray([0, 5], [2], { device: dev, dtype: "i32" });
  if (dev.kind === "cpu") {
    assert.throws(() => embedding(ids, table), /id 5 at 1 is outside \[0, 2\)/);
  } else {
    const y = await embedding(ids, table).toArray();
    assert.deepEqual([y[0], y[1]], [1, 2]);
    assert.ok(Number.isNaN(y[2]) && Number.isNaN(y[3]));
  }
});
