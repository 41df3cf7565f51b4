import assert from "node:assert/strict";
import { type Backend, GPT, preparePeft, Tape, Tensor } from "../../lib/mod.ts";
import { Llama } from "../../lib/nn/llama.ts";
import type { CausalLM } from "../../lib/nn/causal_lm.ts";
import type { WebGpuBackend } from "../../lib/backend/webgpu/mod.ts";
import { bothBackends } from "../harness.ts";

// Gradient checkpointing recomputes each block in the backward pass: with the dropout generator
// rewound, the loss and every LoRA gradient equal the un-checkpointed ones bit for bit (the same
// kernels in the same order), the generator ends where it would have, and on WebGPU the peak of
// live device memory falls.

type Make = (dev: Backend) => CausalLM;
const FAMILIES: [string, Make][] = [
  [
    "gpt2",
    (dev) =>
      GPT.init({ vocab_size: 61, n_positions: 48, n_embd: 32, n_layer: 4, n_head: 4 }, {
        device: dev,
        seed: 5,
      }),
  ],
  ["llama", (dev) =>
    Llama.init({
      vocab_size: 61,
      hidden_size: 32,
      intermediate_size: 48,
      num_hidden_layers: 4,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 48,
    }, { device: dev, seed: 5 })],
];

async function lossAndGrads(make: Make, dev: Backend, checkpointed: boolean, T = 40) {
  const model = make(dev);
  // LoRA with dropout (training mode): the recomputation must draw the same masks.
  const pm = await preparePeft(model, { method: "lora", r: 4, alpha: 8, dropout: 0.3, seed: 2 });
  pm.setTraining(true);
  if (checkpointed) model.gradCheckpointing = { rngs: [pm.dropoutRng] };
  const ids = Int32Array.from({ length: 2 * T }, (_, i) => (i * 7 + 3) % 61);
  const tgt = Int32Array.from({ length: 2 * T }, (_, i) => (i * 5 + 1) % 61);
  const x = Tensor.fromArray(ids, [2, T], { device: dev, dtype: "i32" });
  const y = Tensor.fromArray(tgt, [2, T], { device: dev, dtype: "i32" });
  const gpuEngine = dev.kind === "webgpu" ? (dev as WebGpuBackend).engine : null;
  await dev.sync();
  const base = gpuEngine?.liveBytes ?? 0;
  if (gpuEngine) gpuEngine.peakBytes = gpuEngine.liveBytes;
  const tape = new Tape();
  tape.watch(...pm.trainable.values());
  const loss = tape.run(() => model.loss(x, y));
  const grads = tape.backward(loss);
  await dev.sync();
  const peak = (gpuEngine?.peakBytes ?? 0) - base;
  const out = {
    loss: await loss.item(),
    grads: new Map<string, Float32Array>(),
    rng: pm.dropoutRng.getState(),
    peak,
  };
  for (const [n, t] of pm.trainable) {
    out.grads.set(n, (await grads.get(t)!.toArray()) as Float32Array);
  }
  model.dispose();
  return out;
}

for (const [family, make] of FAMILIES) {
  bothBackends(
    `gradient checkpointing (${family}): loss and LoRA gradients bit for bit`,
    async (dev) => {
      const plain = await lossAndGrads(make, dev, false);
      const ck = await lossAndGrads(make, dev, true);
      assert.equal(ck.loss, plain.loss);
      assert.ok(Number.isFinite(plain.loss));
      assert.deepEqual(ck.rng, plain.rng, "the dropout generator ends where it would have");
      assert.equal(ck.grads.size, plain.grads.size);
      let nonzero = 0;
      for (const [n, g] of plain.grads) {
        assert.deepEqual(ck.grads.get(n), g, n);
        if (g.some((v) => v !== 0)) nonzero++;
      }
      assert.ok(
        nonzero >= plain.grads.size / 2,
        `${nonzero} of ${plain.grads.size} gradients nonzero`,
      );
      console.log(`peak device bytes: checkpointed ${ck.peak}, plain ${plain.peak}`);
      if (dev.kind === "webgpu") {
        // Activations of 4 blocks at T = 40 against one block's plus the block inputs.
        assert.ok(ck.peak < 0.8 * plain.peak, `peak device bytes ${ck.peak} vs ${plain.peak}`);
      }
    },
  );
}
