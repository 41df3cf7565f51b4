// Llama with a key/value cache (RoPE at offset positions, grouped-query attention): the prompt,
// then one token at a time, gives the logits of one forward over the whole sequence.
import assert from "node:assert/strict";
import { generate, Llama, type LlamaConfig, Tensor } from "../../lib/mod.ts";
import { assertClose, bothBackends } from "../harness.ts";

const cfg: LlamaConfig = {
  vocab_size: 41,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2, // GQA: each key/value head serves two query heads
  max_position_embeddings: 24,
  rope_theta: 500,
  rms_norm_eps: 1e-5,
};

bothBackends("Llama.forwardCached: RoPE offsets and GQA match forward's logits", async (dev) => {
  const m = Llama.init(cfg, { device: dev, seed: 3 });
  const T = 24, V = 41, ids = Array.from({ length: T }, (_, i) => (i * 7 + 2) % V);
  const full = await m.forward(Tensor.fromArray(ids, [1, T], { device: dev, dtype: "i32" }))
    .toArray();
  const got: number[] = [];
  let r = m.forwardCached(
    Tensor.fromArray(ids.slice(0, 6), [1, 6], { device: dev, dtype: "i32" }),
    null,
  );
  got.push(...await r.logits.toArray());
  for (let t = 6; t < T; t++) {
    r = m.forwardCached(Tensor.fromArray([ids[t]], [1, 1], { device: dev, dtype: "i32" }), r.cache);
    got.push(...await r.logits.toArray());
  }
  assert.deepEqual(r.cache.k[0].shape, [1, T, 16]); // unrepeated: nkv · hd = 2 · 8
  // float32 through two blocks, sums in other orders: 1e-5 on O(0.1) logits.
  assertClose(got, Array.from(full), 1e-5, "cached vs full logits");
  assert.throws(
    () => m.forwardCached(Tensor.fromArray([1], [1, 1], { device: dev, dtype: "i32" }), r.cache),
    /exceed max_position_embeddings/,
  );
  const g = await generate(m, [1, 2, 3], { maxTokens: 30, temperature: 0 }); // past the context
  assert.equal(g.length, 30);
});
