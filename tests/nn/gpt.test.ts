import assert from "node:assert/strict";
import {
  AdamW,
  type Backend,
  cpu,
  generate,
  GPT,
  type GPTConfig,
  gptParameterCount,
  Rng,
  scope,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { assertClose, bothBackends, gpu } from "../harness.ts";

const tiny: GPTConfig = { vocab_size: 23, n_positions: 16, n_embd: 12, n_layer: 2, n_head: 3 };

Deno.test("GPT: GPT-2 names, shapes and parameter count", () => {
  const m = GPT.init(tiny, { device: cpu, seed: 1 });
  const p = m.namedParameters();
  assert.deepEqual(p.get("transformer.wte.weight")!.shape, [23, 12]);
  assert.deepEqual(p.get("transformer.wpe.weight")!.shape, [16, 12]);
  assert.deepEqual(p.get("transformer.h.0.attn.c_attn.weight")!.shape, [12, 36]); // Conv1D [in, out]
  assert.deepEqual(p.get("transformer.h.1.mlp.c_proj.weight")!.shape, [48, 12]);
  assert.deepEqual(p.get("transformer.ln_f.bias")!.shape, [12]);
  assert.equal(p.size, 2 + 2 * 12 + 2);
  assert.equal(m.numParameters, gptParameterCount(tiny));
  // The published size of GPT-2 small (tied embeddings).
  assert.equal(
    gptParameterCount({
      vocab_size: 50257,
      n_positions: 1024,
      n_embd: 768,
      n_layer: 12,
      n_head: 12,
    }),
    124_439_808,
  );
  assert.deepEqual([...m.linears().keys()].slice(0, 4), [
    "transformer.h.0.attn.c_attn",
    "transformer.h.0.attn.c_proj",
    "transformer.h.0.mlp.c_fc",
    "transformer.h.0.mlp.c_proj",
  ]);
  assert.throws(() => GPT.init({ ...tiny, n_head: 5 }, { device: cpu }), /not divisible by n_head/);
  assert.throws(() => m.forward(Tensor.zeros([1, 17], { dtype: "i32" })), /exceeds n_positions 16/);
  assert.throws(
    () => m.setLinear("transformer.h.9.attn.c_attn", m.linears().values().next().value!),
    /no linear layer/,
  );
});

async function overfit(dev: Backend, steps: number): Promise<number[]> {
  const m = GPT.init(tiny, { device: dev, seed: 3 });
  const rng = new Rng(4);
  const ids = Array.from({ length: 2 * 16 }, () => rng.int(23));
  const tg = Array.from({ length: 2 * 16 }, () => rng.int(23));
  const opt = new AdamW(m.namedParameters(), { lr: 1e-2, weightDecay: 0 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    losses.push(
      await scope(async () => {
        const x = Tensor.fromArray(ids, [2, 16], { device: dev, dtype: "i32" });
        const y = Tensor.fromArray(tg, [2, 16], { device: dev, dtype: "i32" });
        const tape = new Tape();
        tape.watch(...m.namedParameters().values());
        const loss = tape.run(() => m.loss(x, y));
        opt.update(tape.backward(loss));
        return await loss.item();
      }),
    );
  }
  return losses;
}

bothBackends(
  "GPT: a tiny model overfits one batch of random tokens to near-zero loss",
  async (dev) => {
    const losses = await overfit(dev, 150);
    assert.ok(Math.abs(losses[0] - Math.log(23)) < 0.1, `initial loss ${losses[0]} ≈ ln 23`);
    assert.ok(losses[losses.length - 1] < 0.05, `final loss ${losses[losses.length - 1]}`);
  },
);

Deno.test("GPT: the same seed gives bit-identical losses on the CPU backend", async () => {
  const a = await overfit(cpu, 8), b = await overfit(cpu, 8);
  assert.deepEqual(a, b);
});

Deno.test(
  "GPT: WebGPU logits equal the CPU's",
  { sanitizeResources: false, sanitizeOps: false },
  async () => {
    const g = await gpu();
    const mc = GPT.init(tiny, { device: cpu, seed: 5 }),
      mg = GPT.init(tiny, { device: g, seed: 5 });
    const ids = Array.from({ length: 3 * 10 }, (_, i) => (i * 7) % 23);
    const lc = await mc.forward(Tensor.fromArray(ids, [3, 10], { dtype: "i32" })).toArray();
    const lg = await mg.forward(Tensor.fromArray(ids, [3, 10], { device: g, dtype: "i32" }))
      .toArray();
    // float32 through 2 blocks with different summation orders: 1e-5 absolute on O(0.1) logits.
    assertClose(lg, lc, 1e-5, "logits");
  },
);

Deno.test("generate: seeded, greedy is deterministic, options validated", async () => {
  const m = GPT.init(tiny, { device: cpu, seed: 6 });
  const a = await generate(m, [1, 2, 3], { maxTokens: 20, seed: 9 });
  const b = await generate(m, [1, 2, 3], { maxTokens: 20, seed: 9 });
  assert.deepEqual(a, b);
  assert.equal(a.length, 20);
  assert.ok(a.every((t) => t >= 0 && t < 23));
  const g1 = await generate(m, [1], { maxTokens: 5, temperature: 0 });
  const g2 = await generate(m, [1], { maxTokens: 5, temperature: 0, seed: 77 });
  assert.deepEqual(g1, g2);
  await assert.rejects(() => generate(m, [], {}), /at least one token/);
  await assert.rejects(() => generate(m, [1], { topK: -1 }), /topK/);
});

bothBackends(
  "GPT.forwardCached: the prompt, then one token at a time, gives forward's logits",
  async (dev) => {
    const m = GPT.init(tiny, { device: dev, seed: 8 });
    const ids = Array.from({ length: 2 * 16 }, (_, i) => (i * 5 + 3) % 23); // B = 2, all 16 positions
    const full = await m.forward(Tensor.fromArray(ids, [2, 16], { device: dev, dtype: "i32" }))
      .toArray(); // [2, 16, 23]
    const col = (t: number) => ids.filter((_, i) => i % 16 === t);
    const prompt = [0, 1, 2, 3, 4].map((t) => col(t)); // [t][b]
    const promptIds = [0, 1].flatMap((b) => prompt.map((p) => p[b]));
    let r = m.forwardCached(
      Tensor.fromArray(promptIds, [2, 5], { device: dev, dtype: "i32" }),
      null,
    );
    const got: number[][] = [];
    const rows = async (t: Tensor, T: number, t0: number) => {
      const a = await t.toArray();
      for (let b = 0; b < 2; b++) {
        for (let i = 0; i < T; i++) {
          got[b * 16 + t0 + i] = Array.from(
            a.slice((b * T + i) * 23, (b * T + i + 1) * 23),
          );
        }
      }
    };
    await rows(r.logits, 5, 0);
    for (let t = 5; t < 16; t++) {
      r = m.forwardCached(Tensor.fromArray(col(t), [2, 1], { device: dev, dtype: "i32" }), r.cache);
      assert.equal(r.cache.length, t + 1);
      assert.deepEqual(r.cache.k[0].shape, [2, t + 1, 12]);
      await rows(r.logits, 1, t);
    }
    // Each position's logits from one new row against the cached keys vs the whole window at
    // once: the same sums in other orders (float32, two blocks of width 12): 1e-5 on O(0.1) logits.
    assertClose(got.flat(), Array.from(full), 1e-5, "cached vs full logits");
    assert.throws(
      () =>
        m.forwardCached(Tensor.fromArray([1, 2], [1, 2], { device: dev, dtype: "i32" }), r.cache),
      /exceed n_positions/,
    );
  },
);

Deno.test("generate: with the cache, then past the context (window re-read), same greedy tokens as without", async () => {
  const m = GPT.init(tiny, { device: cpu, seed: 6 });
  // 3 prompt tokens + 30 new ones: the cache serves the first 13, then the window slides.
  const a = await generate(m, [1, 2, 3], { maxTokens: 30, temperature: 0 });
  assert.equal(a.length, 30);
  // The same model without forwardCached (the old path) picks the same greedy tokens here.
  const plain = Object.assign(Object.create(Object.getPrototypeOf(m)), m, {
    forwardCached: undefined,
  });
  assert.deepEqual(await generate(plain, [1, 2, 3], { maxTokens: 30, temperature: 0 }), a);
});

Deno.test("GPT: loadState round trip and clear errors", () => {
  const a = GPT.init(tiny, { device: cpu, seed: 1 }), b = GPT.init(tiny, { device: cpu, seed: 2 });
  b.loadState(a.namedParameters());
  const pa = a.namedParameters(), pb = b.namedParameters();
  for (const [n, t] of pa) assert.equal(pb.get(n)!.storage, t.storage, n);
  const bad = new Map(pa);
  bad.delete("transformer.ln_f.bias");
  assert.throws(() => b.loadState(bad), /missing parameter transformer.ln_f.bias/);
  const extra = new Map(pa).set("transformer.h.7.attn.bias", Tensor.zeros([1]));
  assert.throws(() => b.loadState(extra), /unknown parameter transformer.h.7.attn.bias/);
  const wrong = new Map(pa).set("transformer.wte.weight", Tensor.zeros([3, 3]));
  assert.throws(() => b.loadState(wrong), /transformer.wte.weight is \[3,3\], expected \[23,12\]/);
});
