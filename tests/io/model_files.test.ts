import assert from "node:assert/strict";
import { ByteTokenizer, cpu, GPT, Tensor } from "../../lib/mod.ts";
import { loadModel, saveModel } from "../../lib/io/mod.ts";

Deno.test("model directory: save/load round trip gives identical logits; bad dirs are clear errors", async () => {
  const dir = await Deno.makeTempDir();
  const cfg = { vocab_size: 257, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 };
  const m = GPT.init(cfg, { device: cpu, seed: 3 });
  await saveModel(dir, m, new ByteTokenizer(), { note: "test" });
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assert.deepEqual(names, ["config.json", "model.safetensors", "tokenizer.json"]);
  const c = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  assert.equal(c.model_type, "gpt2");
  assert.equal(c.n_embd, 8);
  const { model, tokenizer, metadata } = await loadModel(dir, cpu);
  assert.equal(tokenizer.vocabSize, 257);
  assert.equal(metadata.note, "test");
  const ids = Tensor.fromArray([1, 2, 3, 250], [1, 4], { dtype: "i32" });
  assert.deepEqual(await model.forward(ids).toArray(), await m.forward(ids).toArray());
  await assert.rejects(() => loadModel(`${dir}/missing`, cpu), /cannot read .*config.json/);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...c, n_head: 3 }));
  await assert.rejects(() => loadModel(dir, cpu), /not divisible by n_head 3/);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...c, n_embd: 16, n_head: 2 }));
  await assert.rejects(() => loadModel(dir, cpu), /is \[257,8\], expected \[257,16\]/);
  await Deno.remove(dir, { recursive: true });
});
