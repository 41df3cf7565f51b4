import assert from "node:assert/strict";
import { cpu, Llama, Tape, Tensor } from "../../lib/mod.ts";
import { loadHfWeights, loadModel, tensorFromArray, writeSafetensors } from "../../lib/io/mod.ts";
import {
  gpt2Config,
  gpt2Weights,
  llamaConfig,
  llamaTokenizerJson,
  llamaWeights,
  writeCheckpoint,
} from "./fixtures.ts";

Deno.test("HF folders: malformed ones are clear errors that name the problem", async () => {
  const root = await Deno.makeTempDir();
  const cfg = llamaConfig();
  const w = llamaWeights(cfg, 1, "F32");
  let n = 0;
  /** A fresh folder; `edit` breaks it; the load must reject with `re`. */
  const expectError = async (
    re: RegExp,
    edit: (dir: string) => Promise<void>,
    o: { config?: Record<string, unknown>; shards?: number; drop?: string } = {},
  ) => {
    const dir = `${root}/${n++}`;
    const ws = new Map(w);
    if (o.drop) ws.delete(o.drop);
    await writeCheckpoint(dir, o.config ?? cfg, ws, { shards: o.shards ?? 1 });
    await edit(dir);
    await assert.rejects(() => loadHfWeights(dir, cpu), re);
  };
  const none = () => Promise.resolve();
  await expectError(/cannot read .*config\.json/, (d) => Deno.remove(`${d}/config.json`));
  await expectError(
    /config\.json is not a JSON object/,
    (d) => Deno.writeTextFile(`${d}/config.json`, "[1]"),
  );
  await expectError(
    /unknown architecture \["bert","BertModel"\].*loads gpt2 .* and llama/,
    none,
    { config: { ...cfg, model_type: "bert", architectures: ["BertModel"] } },
  );
  await expectError(
    /missing tensor model\.layers\.1\.mlp\.up_proj\.weight \(LlamaForCausalLM\)/,
    none,
    { drop: "model.layers.1.mlp.up_proj.weight" },
  );
  await expectError(
    /model\.layers\.0\.mlp\.gate_proj\.weight is \[48, 32\], expected \[40, 32\]/,
    none,
    { config: { ...cfg, intermediate_size: 40 } },
  );
  await expectError(
    /unexpected tensors model\.layers\.1\..* and 4 more \(not a parameter of LlamaForCausalLM/,
    none,
    {
      config: { ...cfg, num_hidden_layers: 1 },
    },
  );
  await expectError(
    /num_attention_heads 4 is not a multiple of num_key_value_heads 3/,
    none,
    { config: { ...cfg, num_key_value_heads: 3 } },
  );
  await expectError(/rope_scaling type "yarn" is not supported/, none, {
    config: { ...cfg, rope_scaling: { rope_type: "yarn", factor: 4 } },
  });
  await expectError(/hidden_act gelu is not supported/, none, {
    config: { ...cfg, hidden_act: "gelu" },
  });
  // Weights files.
  await expectError(
    /has no model\.safetensors or model\.safetensors\.index\.json/,
    (d) => Deno.remove(`${d}/model.safetensors`),
  );
  await expectError(/only pytorch_model\.bin/, async (d) => {
    await Deno.rename(`${d}/model.safetensors`, `${d}/pytorch_model.bin`);
  });
  await expectError(
    /model\.safetensors: safetensors: header length \d+ goes beyond the end of the file/,
    async (d) => {
      const b = await Deno.readFile(`${d}/model.safetensors`);
      await Deno.writeFile(`${d}/model.safetensors`, b.subarray(0, 40));
    },
  );
  await expectError(/lm_head\.weight is I32; weights must be F32, F16 or BF16/, async (d) => {
    const st = new Map();
    for (const [k, t] of w) {
      st.set(
        k,
        k === "lm_head.weight"
          ? tensorFromArray("I32", t.shape, new Int32Array(t.data.length))
          : tensorFromArray("F32", t.shape, Float32Array.from(t.data)),
      );
    }
    await writeSafetensors(`${d}/model.safetensors`, st);
  });
  // Index files.
  await expectError(
    /index\.json is not valid JSON/,
    (d) => Deno.writeTextFile(`${d}/model.safetensors.index.json`, "{"),
    { shards: 2 },
  );
  await expectError(
    /index\.json: no "weight_map" object/,
    (d) =>
      Deno.writeTextFile(`${d}/model.safetensors.index.json`, JSON.stringify({ metadata: {} })),
    {
      shards: 2,
    },
  );
  await expectError(
    /names shard model-00002-of-00002\.safetensors, which is missing/,
    (d) => Deno.remove(`${d}/model-00002-of-00002.safetensors`),
    { shards: 2 },
  );
  await expectError(
    /puts model\.norm\.weight in model-0000\d-of-00002\.safetensors, but .* has no such tensor/,
    async (d) => {
      const p = `${d}/model.safetensors.index.json`;
      const j = JSON.parse(await Deno.readTextFile(p));
      // Point the tensor at the shard that does not hold it.
      j.weight_map["model.norm.weight"] =
        j.weight_map["model.norm.weight"].startsWith("model-00001")
          ? "model-00002-of-00002.safetensors"
          : "model-00001-of-00002.safetensors";
      await Deno.writeTextFile(p, JSON.stringify(j));
    },
    { shards: 2 },
  );
  await expectError(
    /weight_map\["model\.norm\.weight"\] = "\.\.\/x" is not a file name/,
    async (d) => {
      const p = `${d}/model.safetensors.index.json`;
      const j = JSON.parse(await Deno.readTextFile(p));
      j.weight_map["model.norm.weight"] = "../x";
      await Deno.writeTextFile(p, JSON.stringify(j));
    },
    { shards: 2 },
  );

  // GPT-2 variants the model does not implement.
  const g = gpt2Config({ activation_function: "relu" });
  await writeCheckpoint(`${root}/g`, g, gpt2Weights(g, 1, "F32"));
  await assert.rejects(() => loadHfWeights(`${root}/g`, cpu), /activation_function relu/);
  // A model folder without any tokenizer: loadModel says so (loadHfWeights does not need one).
  await writeCheckpoint(`${root}/notok`, cfg, w);
  await assert.rejects(() => loadModel(`${root}/notok`, cpu), /has no tokenizer/);
  assert.ok((await loadHfWeights(`${root}/notok`, cpu)).model instanceof Llama);
  // A tokenizer larger than the model.
  await Deno.writeTextFile(`${root}/notok/tokenizer.json`, JSON.stringify(llamaTokenizerJson()));
  await Deno.writeTextFile(
    `${root}/notok/config.json`,
    JSON.stringify({ ...cfg, vocab_size: 200 }),
  );
  await assert.rejects(
    () => loadModel(`${root}/notok`, cpu),
    /embed_tokens\.weight is \[272, 32\], expected \[200, 32\]/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("Llama: tape gradients match central finite differences (RoPE, GQA, SiLU, RMSNorm)", async () => {
  const root = await Deno.makeTempDir();
  const cfg = llamaConfig({
    hidden_size: 8,
    intermediate_size: 12,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    num_hidden_layers: 1,
    vocab_size: 11,
    rope_theta: 10,
  });
  await writeCheckpoint(root, cfg, llamaWeights(cfg, 3, "F32"));
  const { model } = await loadHfWeights(root, cpu);
  const ids = Tensor.fromArray(Int32Array.from([1, 5, 2, 9, 4, 7]), [1, 6]);
  const tg = Tensor.fromArray(Int32Array.from([5, 2, 9, 4, 7, 3]), [1, 6]);
  const params = model.namedParameters();
  const tape = new Tape();
  tape.watch(...params.values());
  const grads = tape.backward(tape.run(() => model.loss(ids, tg)));
  const lossAt = async () => await model.loss(ids, tg).item();
  let worst = 0;
  for (
    const name of [
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.0.self_attn.k_proj.weight",
      "model.layers.0.self_attn.v_proj.weight",
      "model.layers.0.mlp.gate_proj.weight",
      "model.layers.0.input_layernorm.weight",
      "model.norm.weight",
      "model.embed_tokens.weight",
    ]
  ) {
    const p = params.get(name)!;
    const g = (await grads.get(p)!.toArray()) as Float32Array;
    const data = (await p.toArray()) as Float32Array;
    for (const i of [0, 3, Math.floor(p.size / 2), p.size - 1]) {
      const h = 1e-2, orig = data[i];
      data[i] = orig + h;
      p.assign(data);
      const up = await lossAt();
      data[i] = orig - h;
      p.assign(data);
      const down = await lossAt();
      data[i] = orig;
      p.assign(data);
      const fd = (up - down) / (2 * h);
      // f32 loss ≈ 2.4 → rounding ≈ 3e-7 / 1e-2 = 3e-5 in fd; O(h²) truncation ≈ 1e-4.
      const err = Math.abs(fd - g[i]);
      worst = Math.max(worst, err / (1e-3 + Math.abs(fd)));
      assert.ok(err <= 1e-3 + 2e-2 * Math.abs(fd), `${name}[${i}]: tape ${g[i]}, fd ${fd}`);
    }
  }
  console.log(`llama gradients: worst |tape - fd| / (1e-3 + |fd|) = ${worst.toExponential(2)}`);
  await Deno.remove(root, { recursive: true });
});
