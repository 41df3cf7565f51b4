// A training step on WebGPU (lib/train/step.ts trainStep) waits for the GPU exactly once — the
// readback of its losses and gradient norm — and submits a bounded number of command buffers
// (issue 15, item 2), counted by the engine (GpuEngine.waits / submits).
import assert from "node:assert/strict";
import { AdamW, GPT, preparePeft, Rng, Tensor } from "../../lib/mod.ts";
import type { WebGpuBackend } from "../../lib/backend/webgpu/mod.ts";
import { MAX_BATCH } from "../../lib/backend/webgpu/engine.ts";
import { type Batch, evalBatches } from "../../lib/data/batch.ts";
import { evaluate } from "../../lib/train/eval.ts";
import { trainStep } from "../../lib/train/step.ts";
import { gpu } from "../harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** A maker of random [2, 16] token batches. */
function batches(rng: Rng, vocab: number): () => Batch {
  const [B, T] = [2, 16];
  return () => {
    const ids = Int32Array.from({ length: B * T + 1 }, () => rng.int(vocab));
    return {
      x: ids.slice(0, B * T),
      y: ids.slice(1),
      batchSize: B,
      seqLen: T,
      starts: new Int32Array(B),
    };
  };
}

Deno.test(
  "a WebGPU training step waits once and submits a bounded number of times",
  opts,
  async () => {
    const dev = (await gpu()) as WebGpuBackend;
    const eng = dev.engine;
    const cfg = { vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 2 };
    const model = GPT.init(cfg, { device: dev, seed: 1 });
    const pm = await preparePeft(model, { method: "lora", dropout: 0 });
    const opt = new AdamW(pm.trainable, { lr: 1e-3, weightDecay: 0 });
    const batch = batches(new Rng(2), cfg.vocab_size);
    const step = (n: number) =>
      trainStep(model, pm.trainable.values(), opt, Array.from({ length: n }, batch), {
        lr: 1e-3,
        maxNorm: 1,
        mask: (g) => pm.maskGrads(g),
      });
    await step(1); // compiles the pipelines
    for (const micro of [1, 2, 3]) {
      await dev.sync();
      const [w0, s0, d0] = [eng.waits, eng.submits, eng.dispatches];
      const r = await step(micro);
      const [waits, submits, dispatches] = [
        eng.waits - w0,
        eng.submits - s0,
        eng.dispatches - d0,
      ];
      assert.ok(Number.isFinite(r.loss));
      assert.equal(waits, 1, `${micro} micro-batches: one wait per step`);
      // Full batches of recorded dispatches, plus the uploads of each micro-batch's tokens (an
      // upload submits the work recorded before it), plus the final readback.
      const bound = Math.ceil(dispatches / MAX_BATCH) + 2 * micro + 1;
      assert.ok(
        submits >= 1 && submits <= bound,
        `${micro} micro-batches: ${submits} submits for ${dispatches} dispatches (bound ${bound})`,
      );
    }
    opt.dispose();
    model.dispose();
  },
);

Deno.test(
  "WebGPU training steps in steady state allocate no new buffers and hold no more memory",
  opts,
  async () => {
    const dev = (await gpu()) as WebGpuBackend;
    const eng = dev.engine;
    const cfg = { vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 2 };
    const batch = batches(new Rng(3), cfg.vocab_size);
    // Full fine-tuning gives every parameter a gradient (the leak this guards against was one
    // set of gradients per step: kept past the micro-batch, never disposed).
    for (const method of ["full", "lora"] as const) {
      const model = GPT.init(cfg, { device: dev, seed: 1 });
      const pm = await preparePeft(model, { method, dropout: 0 });
      const opt = new AdamW(pm.trainable, { lr: 1e-3, weightDecay: 0 });
      const step = (n: number) =>
        trainStep(model, pm.trainable.values(), opt, Array.from({ length: n }, batch), {
          lr: 1e-3,
          maxNorm: 1,
        });
      for (const micro of [1, 2]) {
        await step(micro); // the pool fills
        const [c0, live0] = [eng.buffersCreated, eng.liveBytes];
        for (let i = 0; i < 3; i++) await step(micro);
        assert.equal(eng.buffersCreated - c0, 0, `${method}, ${micro} micro-batches: new buffers`);
        assert.equal(eng.liveBytes, live0, `${method}, ${micro} micro-batches: live bytes`);
      }
      opt.dispose();
      model.dispose();
    }
  },
);

Deno.test(
  "WebGPU evaluation reads a group of batch losses with one wait, same mean",
  opts,
  async () => {
    const dev = (await gpu()) as WebGpuBackend;
    const cfg = { vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 2 };
    const model = GPT.init(cfg, { device: dev, seed: 4 });
    const rng = new Rng(5);
    const tokens = Int32Array.from({ length: 5 * 2 * 16 + 1 }, () => rng.int(cfg.vocab_size));
    const w0 = dev.engine.waits;
    const mean = await evaluate(model, tokens, 2, 16); // 5 batches of [2, 16]
    assert.equal(dev.engine.waits - w0, 1, "one wait for the five losses");
    // The same losses read one by one, weighted by their targets, summed in batch order.
    let total = 0, count = 0;
    for (const b of evalBatches(tokens, 2, 16)) {
      const x = Tensor.fromArray(b.x, [2, 16], { device: dev, dtype: "i32" });
      const y = Tensor.fromArray(b.y, [2, 16], { device: dev, dtype: "i32" });
      const n = b.y.length;
      total += (await model.loss(x, y, { count: n }).item()) * n;
      count += n;
    }
    assert.equal(mean, total / count);
    model.dispose();
  },
);
