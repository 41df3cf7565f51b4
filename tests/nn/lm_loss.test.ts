// The LM loss in row chunks (lib/nn/lm_loss.ts): logits over a backend's largest buffer go
// through the head and the per-row losses a chunk at a time.
import assert from "node:assert/strict";
import { type Backend, cpu, GPT, matmul, Rng, Tape, Tensor } from "../../lib/mod.ts";
import { lmLoss } from "../../lib/nn/lm_loss.ts";
import { assertClose, bothBackends, randData } from "../harness.ts";

/** Mean cross-entropy of x·Wᵀ in float64 over the targets that are not -100. */
function lossRef(h: number[], w: number[], t: number[], C: number, V: number): number {
  let s = 0, n = 0;
  for (let r = 0; r < t.length; r++) {
    if (t[r] === -100) continue;
    const z = Array.from({ length: V }, (_, v) => {
      let d = 0;
      for (let c = 0; c < C; c++) d += h[r * C + c] * w[v * C + c];
      return d;
    });
    const m = Math.max(...z);
    s += Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0)) + m - z[t[r]];
    n++;
  }
  return s / n;
}

bothBackends("lmLoss: row chunks give the loss and gradients of one piece", async (dev) => {
  const rng = new Rng(5);
  const B = 2, T = 7, C = 5, V = 11;
  const hv = randData(rng, B * T * C), wv = randData(rng, V * C);
  const tv = Array.from({ length: B * T }, (_, i) => (i % 5 === 3 ? -100 : rng.int(V)));
  const count = tv.filter((v) => v !== -100).length;
  for (const masked of [false, true]) {
    const targets = masked ? tv : tv.map((v) => (v === -100 ? 0 : v));
    const run = async (maxBytes: number) => {
      const h = Tensor.fromArray(hv, [B, T, C], { device: dev });
      const w = Tensor.fromArray(wv, [V, C], { device: dev });
      const y = Tensor.fromArray(targets, [B, T], { device: dev, dtype: "i32" });
      const tape = new Tape();
      tape.watch(h, w);
      const head = (x: Tensor) => matmul(x, w, { transB: true });
      const loss = tape.run(() => lmLoss(h, head, V, y, masked ? { count } : {}, maxBytes));
      const g = tape.backward(loss);
      return [await loss.toArray(), await g.get(h)!.toArray(), await g.get(w)!.toArray()];
    };
    const whole = await run(Infinity);
    const chunked = await run(4 * V * 3); // 3 rows per chunk: 5 chunks of 3, 3, 3, 3, 2
    // Independent reference for the value: float64, 2e-6 relative (f32 logits and log-sum-exp).
    const ref = lossRef(hv, wv, targets, C, V);
    assertClose(whole[0], [ref], 2e-6 * Math.abs(ref), `loss masked=${masked}`);
    // Chunks compute the same rows with the same kernels: equal to f32 rounding (1e-6).
    for (let i = 0; i < 3; i++) {
      assertClose(chunked[i], whole[i], 1e-6, `chunked vs whole ${i} masked=${masked}`);
    }
  }
});

Deno.test({
  name: "lmLoss: a GPT whose logits exceed the WebGPU adapter's largest buffer trains [webgpu]",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { getDevice } = await import("../../lib/mod.ts");
    const g: Backend = await getDevice({ backend: "webgpu" });
    const V = 50257, C = 8;
    // Enough positions that [rows, V] f32 is over the adapter's limit (lavapipe: 128 MiB).
    const rows = Math.ceil(g.maxStorageBytes / (4 * V)) + 64;
    const T = Math.min(1024, rows), B = Math.ceil(rows / T);
    const cfg = { vocab_size: V, n_positions: T, n_embd: C, n_layer: 1, n_head: 2 };
    const rng = new Rng(9);
    const ids = Array.from({ length: B * T }, () => rng.int(V));
    const tg = Array.from({ length: B * T }, () => rng.int(V));
    const step = async (dev: Backend) => {
      const m = GPT.init(cfg, { device: dev, seed: 2 });
      const x = Tensor.fromArray(ids, [B, T], { device: dev, dtype: "i32" });
      const y = Tensor.fromArray(tg, [B, T], { device: dev, dtype: "i32" });
      const w = m.namedParameters().get("transformer.ln_f.weight")!;
      const tape = new Tape();
      tape.watch(w);
      const loss = tape.run(() => m.loss(x, y));
      const grad = await tape.backward(loss).get(w)!.toArray();
      const out = [...(await loss.toArray()), ...grad];
      m.dispose();
      return out;
    };
    assert.ok(4 * B * T * V > g.maxStorageBytes, "the logits do not fit one buffer");
    const [onGpu, onCpu] = [await step(g), await step(cpu)];
    // f32 sums over 50,257 logits per row and T rows: 1e-4 relative to the largest value.
    const scale = Math.max(...onCpu.map(Math.abs));
    assertClose(onGpu, onCpu, 1e-4 * scale, "webgpu (chunked) vs cpu (whole)");
  },
});

bothBackends(
  "forwardCached lastOnly: the last position's logits, as in the full ones",
  async (dev) => {
    const { Llama } = await import("../../lib/mod.ts");
    const rng = new Rng(4);
    const ids = Array.from({ length: 9 }, () => rng.int(23));
    const models = [
      GPT.init({ vocab_size: 23, n_positions: 16, n_embd: 12, n_layer: 2, n_head: 3 }, {
        device: dev,
        seed: 1,
      }),
      Llama.init({
        vocab_size: 23,
        hidden_size: 16,
        intermediate_size: 24,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 16,
      }, { device: dev, seed: 1 }),
    ];
    for (const m of models) {
      const x = Tensor.fromArray(ids, [1, 9], { device: dev, dtype: "i32" });
      const all = await m.forwardCached!(x, null).logits.toArray(); // [1, 9, 23]
      const r = m.forwardCached!(x, null, { lastOnly: true });
      assert.deepEqual(r.logits.shape, [1, 1, 23]);
      assert.equal(r.cache.length, 9);
      assertClose(await r.logits.toArray(), Array.from(all.slice(8 * 23)), 1e-6, m.arch);
      m.dispose();
    }
  },
);
