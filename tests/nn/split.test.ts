// Tensors over the backend's largest storage (a GPU adapter's maxStorageBufferBindingSize) are
// stored in row chunks; the embedding gather and the product with them as the right operand run
// chunk by chunk. Tests lower the split size with setSplitBytes so that small tensors split.
import assert from "node:assert/strict";
import {
  AdamW,
  type Backend,
  embedding,
  generate,
  GPT,
  type GPTConfig,
  Llama,
  type LlamaConfig,
  matmul,
  mul,
  preparePeft,
  Rng,
  scope,
  setSplitBytes,
  sum,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { trainStep } from "../../lib/train/step.ts";
import { assertClose, bothBackends, randData } from "../harness.ts";

/** Runs `fn` with tensors over `bytes` split (restores the default after). */
function splitAt<T>(bytes: number, fn: () => T): T {
  const prev = setSplitBytes(bytes);
  try {
    return fn();
  } finally {
    setSplitBytes(prev);
  }
}

bothBackends("split tensor: row chunks, reads, assign and clear refusals", async (dev) => {
  const rng = new Rng(1);
  const data = randData(rng, 37 * 5);
  const w = splitAt(256, () => Tensor.fromArray(data, [37, 5], { device: dev }));
  // 20 B rows, 256 B limit: 12 rows fit, 4 chunks of 10, 10, 10, 7.
  assert.deepEqual(w.chunks!.map((c) => c.shape), [[10, 5], [10, 5], [10, 5], [7, 5]]);
  assert.deepEqual(Array.from(await w.toArray()), data);
  assert.deepEqual(Array.from((await Tensor.readAll([w, w]))[1]), data);
  const twice = data.map((v) => 2 * v);
  w.assign(twice);
  assert.deepEqual(Array.from(await w.toArray()), twice);
  assert.throws(() => w.storage, /stored in 4 row chunks.*only embedding/);
  assert.throws(() => w.reshape([5, 37]), /row chunks and keeps its shape/);
  const v = w.reshape([37, 5]); // a view sharing the chunks
  assert.equal(v.chunks!.length, 4);
  const small = splitAt(256, () => Tensor.fromArray([1, 2, 3], [3], { device: dev }));
  assert.equal(small.chunks, null, "1-D tensors are never split");
  assert.equal(Tensor.fromArray(data, [37, 5], { device: dev }).chunks, null, "default: no split");
  const x = Tensor.fromArray(randData(rng, 3 * 5), [3, 5], { device: dev });
  assert.throws(() => matmul(x, w, { transA: true, transB: true }), /untransposed whole left/);
  // A tape watches a split tensor as its chunks: one gradient per chunk (tests/ops/split.test.ts
  // checks their values).
  const tape = new Tape();
  tape.watch(w);
  assert.deepEqual(tape.watched(), w.chunks);
  const ids = Tensor.fromArray([1, 36], [2], { device: dev, dtype: "i32" });
  const loss = tape.run(() => sum(matmul(embedding(ids, w), w, { transB: true }).reshape([-1]), 0));
  const grads = tape.backward(loss);
  assert.deepEqual(new Set(grads.keys()), new Set(w.chunks), "one gradient per chunk");
  for (const g of grads.values()) g.dispose();
  const cs = w.chunks!;
  w.dispose();
  assert.ok(!cs[0].disposed, "a view keeps the chunks alive");
  v.dispose();
  assert.ok(cs.every((c) => c.disposed), "the last view frees them");
});

bothBackends("split tensor: embedding and both products equal the unsplit ops", async (dev) => {
  const rng = new Rng(2);
  const [V, C, M] = [29, 6, 7];
  const wd = randData(rng, V * C), xd = randData(rng, 2 * M * C), gd = randData(rng, 2 * M * V);
  const whole = Tensor.fromArray(wd, [V, C], { device: dev });
  const split = splitAt(200, () => Tensor.fromArray(wd, [V, C], { device: dev })); // 8 rows each
  assert.equal(split.chunks!.length, 4);
  const ids = Tensor.fromArray(
    Array.from({ length: 2 * M }, (_, i) => (i * 11) % V),
    [2, M],
    { device: dev, dtype: "i32" },
  );
  // The gather is exact: each id's row comes from one chunk, the other chunks add zeros.
  assert.deepEqual(
    Array.from(await embedding(ids, split).toArray()),
    Array.from(await embedding(ids, whole).toArray()),
  );
  const run = (w: Tensor) => {
    const x = Tensor.fromArray(xd, [2, M, C], { device: dev });
    const tape = new Tape();
    tape.watch(x);
    const y = tape.run(() => matmul(x, w, { transB: true })); // [2, M, V]
    const g = Tensor.fromArray(gd, [2, M, V], { device: dev });
    const loss = tape.run(() => sum(mul(y, g).reshape([-1]), 0));
    return { y, dx: tape.backward(loss).get(x)! };
  };
  const a = run(whole), b = run(split);
  const [ya, yb, da, db] = await Promise.all([a.y, b.y, a.dx, b.dx].map((t) => t.toArray()));
  // Forward: each output is the same K=6 dot product, whichever chunk it comes from (the GPU
  // may pick another tiling per width: a few roundings). Backward: the V-long sum runs per chunk
  // and the partial sums are added: a different summation order.
  assertClose(yb, ya, dev.kind === "cpu" ? 0 : 1e-6, "logits");
  assertClose(db, da, 1e-5, "dx");
});

const gptCfg: GPTConfig = { vocab_size: 150, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 };
// wte is 150·16·4 = 9600 B; the largest other parameter (c_fc, [16, 64]) 4096 B.
const SPLIT = 4096;

/** A LoRA model (B made non-zero, so every LoRA gradient matters) on `m`. */
async function lora(m: GPT | Llama) {
  const pm = await preparePeft(m, { method: "lora", r: 4, seed: 5 });
  const rng = new Rng(6);
  for (const l of pm.loraLayers.values()) l.loraB.assign(randData(rng, l.loraB.size, 0.1));
  return pm;
}

/** Logits, loss and LoRA gradients of one step (names in a fixed order). */
async function step(m: GPT | Llama, dev: Backend) {
  const pm = await lora(m);
  const rng = new Rng(7);
  const ids = Array.from({ length: 2 * 12 }, () => rng.int(m.vocabSize));
  const tg = Array.from({ length: 2 * 12 }, () => rng.int(m.vocabSize));
  return await scope(async () => {
    const x = Tensor.fromArray(ids, [2, 12], { device: dev, dtype: "i32" });
    const y = Tensor.fromArray(tg, [2, 12], { device: dev, dtype: "i32" });
    const tape = new Tape();
    const params = [...pm.trainable.values()];
    tape.watch(...params);
    const logits = tape.run(() => m.forward(x));
    const loss = tape.run(() => m.loss(x, y));
    const g = tape.backward(loss);
    return {
      logits: await logits.toArray(),
      loss: await loss.item(),
      grads: await Promise.all(params.map((p, i) => {
        if (!g.get(p)) throw new Error(`no grad ${[...pm.trainable.keys()][i]}`);
        return g.get(p)!.toArray();
      })),
      names: [...pm.trainable.keys()],
    };
  });
}

/**
 * Three full fine-tuning steps (AdamW with weight decay, gradients clipped to norm 0.5) of the
 * split model and the unsplit one: the same losses and weights, within the tolerance below.
 */
async function compareFull(plain: GPT | Llama, split: GPT | Llama): Promise<void> {
  const run = async (m: GPT | Llama) => {
    const pm = await preparePeft(m, { method: "full", seed: 5 });
    const opt = new AdamW(pm.trainable, { lr: 1e-3, weightDecay: 0.01 });
    const rng = new Rng(8), losses: number[] = [];
    const B = 2, T = 12;
    for (let s = 0; s < 3; s++) {
      const batch = {
        x: Int32Array.from({ length: B * T }, () => rng.int(m.vocabSize)),
        y: Int32Array.from({ length: B * T }, () => rng.int(m.vocabSize)),
        batchSize: B,
        seqLen: T,
        starts: new Int32Array(B),
      };
      // Two micro-batches: gradient accumulation over the chunks too.
      const r = await trainStep(m, pm.trainable.values(), opt, [batch, batch], {
        lr: 1e-3,
        maxNorm: 0.5,
      });
      losses.push(r.loss);
    }
    const state = await opt.getState();
    const weights = new Map<string, Float32Array>();
    for (const [n, t] of pm.trainable) weights.set(n, (await t.toArray()) as Float32Array);
    return { losses, weights, state, counts: pm.counts() };
  };
  const a = await run(plain), b = await run(split);
  assert.deepEqual(b.counts, a.counts, "the same parameter counts");
  assert.deepEqual([...b.weights.keys()], [...a.weights.keys()], "the same names, whole tensors");
  assert.deepEqual(Object.keys(b.state.buffers), Object.keys(a.state.buffers));
  // The split models differ from the unsplit ones only in the rounding of the head's input
  // gradient (g·W sums its V terms chunk by chunk), which flows into every gradient (~1e-7
  // relative). AdamW's update m/√v is ≈ ±lr per entry whatever the gradient's size, so a
  // gradient entry near zero whose rounding flips its sign could move its weight by up to
  // 2·lr per step. Seen over 3 steps (lr 1e-3), both backends: the same losses (f32), weights
  // within 2e-6 (GPT) and 1.1e-7 (Llama); 1e-5 allowed.
  assertClose(b.losses, a.losses, 1e-5, "losses");
  for (const [n, w] of a.weights) assertClose(b.weights.get(n)!, w, 1e-5, `weights ${n}`);
  for (const [n, bufs] of Object.entries(a.state.buffers)) {
    assertClose(b.state.buffers[n].m, bufs.m, 1e-5, `AdamW m of ${n}`);
  }
}

/** Compares a split model's step with the unsplit one's. */
async function compare(dev: Backend, make: () => GPT | Llama): Promise<void> {
  const plain = make();
  const split = splitAt(SPLIT, make);
  const chunked = [...split.namedParameters()].filter(([, t]) => t.chunks);
  assert.ok([...plain.namedParameters().values()].every((t) => !t.chunks));
  assert.ok(chunked.length > 0 && chunked.every(([, t]) => t.chunks!.length === 3));
  assert.ok(
    chunked.every(([n]) => /wte|embed_tokens|lm_head/.test(n)),
    "only [V, C] tensors split",
  );
  const a = await step(plain, dev), b = await step(split, dev);
  assert.deepEqual(b.names, a.names);
  // CPU: the logits are the same dot products (exact) and the loss with them; the gradients
  // differ only where dx of the head sums its V terms per chunk (a few f32 roundings: seen
  // ≤ 6e-8 on gradients of magnitude ~1e-2, 1e-6 allowed). WebGPU: the product of a chunk may run
  // another tiling than the whole (seen exact here; 1e-6 allowed, matmul's tolerance at K = 16).
  const exact = dev.kind === "cpu";
  assertClose(b.logits, a.logits, exact ? 0 : 1e-6, "logits");
  assertClose([b.loss], [a.loss], exact ? 0 : 1e-6, "loss");
  a.grads.forEach((g, i) => assertClose(b.grads[i], g, 1e-6, `d ${a.names[i]}`));
  // Greedy generation (prompt, then the key/value cache) picks the same tokens.
  const ga = await generate(plain, [1, 2, 3], { maxTokens: 6, temperature: 0 });
  assert.deepEqual(await generate(split, [1, 2, 3], { maxTokens: 6, temperature: 0 }), ga);
  // Full fine-tuning trains the split tensors chunk by chunk.
  await compareFull(make(), splitAt(SPLIT, make));
}

bothBackends(
  "split GPT (tied wte in 3 chunks): LoRA step and generation equal unsplit",
  (dev) =>
    compare(dev, () => {
      return GPT.init(gptCfg, { device: dev, seed: 4 });
    }),
);

const llamaCfg: LlamaConfig = {
  vocab_size: 150,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 16,
  rope_theta: 500,
  rms_norm_eps: 1e-5,
};

bothBackends(
  "split Llama (embed_tokens, lm_head): LoRA step and generation equal unsplit",
  (dev) =>
    compare(dev, () => {
      return Llama.init(llamaCfg, { device: dev, seed: 4 });
    }),
);
