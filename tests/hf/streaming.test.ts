/**
 * Streaming load (issue 16, item 1): a checkpoint loaded for QLoRA (or in f32) never has the
 * whole model in f32, nor all its stored bytes, at once. Two checks, at every tensor the loader
 * reports (`onProgress`):
 *
 * - every buffer the safetensors reader handed out (a tensor's stored bytes, which for an F32
 *   checkpoint are also its f32 values) has been freed (detached) once its tensor is on the
 *   device: a deterministic check, whatever the garbage collector does;
 * - the host memory held in ArrayBuffers (`Deno.memoryUsage().external`) stays below what the
 *   model keeps at the end plus a few tensors: the f32 copies of bf16 weights are freed too. (The
 *   garbage collector can only lower this figure, so it can hide a leak but never fail a correct
 *   loader.)
 */

import assert from "node:assert/strict";
import { cpu, LoraLinear, preparePeft, QuantLinear, saveAdapter, Tensor } from "../../lib/mod.ts";
import { LazySafetensors, loadHfWeights, loadModel, type LoadProgress } from "../../lib/io/mod.ts";
import { loadWithAdapter } from "../../lib/peft/load_adapted.ts";
import { llamaConfig, llamaTokenizerJson, llamaWeights, writeCheckpoint } from "./fixtures.ts";

/** The bytes a model keeps on the CPU backend: its f32 parameters and packed quantized weights. */
function keptBytes(model: {
  namedParameters(): Map<string, { bytes: number }>;
  linears(): Map<string, unknown>;
}): number {
  let n = 0;
  for (const t of model.namedParameters().values()) n += t.bytes;
  for (const l of model.linears().values()) if (l instanceof QuantLinear) n += l.weight.bytes;
  return n;
}

// 2.1 M parameters (8.4 MB in f32) in 3 shards; the largest tensors (embedding, head, MLP) are
// 64 Ki parameters, 256 KB in f32. Small enough that V8 would not collect garbage copies soon.
const CFG = llamaConfig({
  hidden_size: 128,
  intermediate_size: 512,
  num_hidden_layers: 8,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 512,
});
const PARAMS = 2_099_328;
const LARGEST_F32 = 4 * 512 * 128;

for (const dtype of ["BF16", "F32"] as const) {
  for (const quantize of ["nf4", "none"] as const) {
    Deno.test(`HF load streams ${dtype} tensor by tensor, freeing each (quantize ${quantize})`, async () => {
      const dir = await Deno.makeTempDir();
      await writeCheckpoint(dir, CFG, llamaWeights(CFG, 3, dtype), { dtype, shards: 3 });

      // Every buffer the lazy reader hands out, to see which are still alive.
      const read = LazySafetensors.prototype.read;
      const handed: Uint8Array[] = [];
      LazySafetensors.prototype.read = async function (this: LazySafetensors, name: string) {
        const t = await read.call(this, name);
        handed.push(t.data);
        return t;
      };
      const ext0 = Deno.memoryUsage().external;
      let maxHeld = 0, maxAlive = 0, calls = 0, lastBytes = 0;
      let last: LoadProgress | null = null;
      let model;
      try {
        ({ model } = await loadHfWeights(dir, cpu, {
          quantize,
          onProgress: (p) => {
            calls++;
            assert.equal(p.tensors, calls, "one report per tensor, in order");
            assert.ok(p.bytes > lastBytes && p.bytes <= p.totalBytes);
            lastBytes = p.bytes;
            last = p;
            let alive = 0;
            for (const d of handed) if (!(d.buffer as ArrayBuffer).detached) alive += d.byteLength;
            maxAlive = Math.max(maxAlive, alive);
            maxHeld = Math.max(maxHeld, Deno.memoryUsage().external - ext0);
          },
        }));
      } finally {
        LazySafetensors.prototype.read = read;
      }
      const kept = keptBytes(model);
      const p = last as LoadProgress | null;
      assert.ok(p);
      assert.equal(p.tensors, p.totalTensors);
      assert.equal(p.bytes, p.totalBytes);
      assert.equal(handed.length, p.totalTensors, "each tensor read once");
      console.log(
        `${dtype}, quantize ${quantize}: the model keeps ${(kept / 1e6).toFixed(2)} MB ` +
          `(all f32: ${(4 * PARAMS / 1e6).toFixed(2)} MB); at a tensor's end, stored bytes ` +
          `alive ${maxAlive} B, ArrayBuffers held at most ${(maxHeld / 1e6).toFixed(2)} MB`,
      );
      assert.equal(maxAlive, 0, "stored bytes (or f32 views of them) left alive after a tensor");
      assert.ok(
        maxHeld <= kept + 4 * LARGEST_F32 + 1e6,
        `${maxHeld} bytes held during the load, the model keeps ${kept}`,
      );
      model.dispose();
      await Deno.remove(dir, { recursive: true });
    });
  }
}

Deno.test("eval/generate: a QLoRA adapter's HF base is quantized while it loads, with training's codes", async () => {
  const base = await Deno.makeTempDir(), adapter = await Deno.makeTempDir();
  const cfg = llamaConfig();
  await writeCheckpoint(base, cfg, llamaWeights(cfg, 5, "BF16"), { dtype: "BF16", shards: 2 });
  await Deno.writeTextFile(`${base}/tokenizer.json`, JSON.stringify(llamaTokenizerJson()));
  // The old way: the whole base in f32, then preparePeft quantizes it; B made non-zero.
  const { model: ref } = await loadModel(base, cpu);
  const pm = await preparePeft(ref, { method: "qlora", seed: 1, dropout: 0 });
  for (const l of pm.loraLayers.values()) {
    l.loraB.dispose();
    l.loraB = Tensor.randn(l.loraB.shape, { device: cpu, seed: 9, std: 0.1 }).keep();
  }
  await saveAdapter(adapter, pm, base);
  pm.setTraining(false);

  let last: LoadProgress | null = null;
  const got = await loadWithAdapter(base, adapter, cpu, { onProgress: (p) => (last = p) });
  const lora = [...got.model.linears().values()];
  assert.ok(lora.length > 0 && lora.every((l) => l instanceof LoraLinear));
  assert.ok(lora.every((l) => (l as LoraLinear).base instanceof QuantLinear), "loaded as NF4");
  const p = last as LoadProgress | null;
  assert.ok(p && p.quantizeSeconds > 0, "quantized by the loader, not afterwards");
  const ids = Tensor.fromArray(Int32Array.from([3, 17, 200, 42, 1]), [1, 5], { dtype: "i32" });
  const a = (await got.model.forward(ids).toArray()) as Float32Array;
  const b = (await ref.forward(ids).toArray()) as Float32Array;
  assert.deepEqual(a, b, "the same logits, bit for bit");
  got.model.dispose();
  ref.dispose();
  await Deno.remove(base, { recursive: true });
  await Deno.remove(adapter, { recursive: true });
});
