// bench/scale.ts's checkpoint writer: a random Llama folder in Hugging Face layout (bf16 shards,
// index, config.json, GPT-2 BPE files) that the loader reads back, with every tensor's shape.
import assert from "node:assert/strict";
import { cpu, Llama } from "../../lib/mod.ts";
import { loadHfModel } from "../../lib/io/mod.ts";
import { llamaTensorList, scaleConfigJson, writeRandomLlama } from "../../bench/scale.ts";

Deno.test("bench/scale.ts writes a sharded bf16 Llama checkpoint the loader reads", async () => {
  const dir = await Deno.makeTempDir();
  const bytes = await writeRandomLlama(dir, "tiny", 1, 40_000);
  const list = llamaTensorList(scaleConfigJson("tiny"));
  assert.equal(bytes, list.reduce((n, t) => n + 2 * t.shape.reduce((a, b) => a * b, 1), 0));
  const index = JSON.parse(await Deno.readTextFile(`${dir}/model.safetensors.index.json`));
  const shards = new Set(Object.values(index.weight_map));
  assert.ok(shards.size > 1, `${shards.size} shards`);
  let reports = 0;
  const { model, tokenizer } = await loadHfModel(dir, cpu, {
    quantize: "nf4",
    onProgress: () => reports++,
  });
  assert.ok(model instanceof Llama);
  assert.equal(reports, list.length);
  assert.ok(tokenizer.vocabSize <= model.vocabSize);
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});
