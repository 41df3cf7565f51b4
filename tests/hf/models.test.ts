import assert from "node:assert/strict";
import { cpu, GPT, Llama, QuantLinear, Tensor } from "../../lib/mod.ts";
import { loadHfWeights, loadModel } from "../../lib/io/mod.ts";
import { bothBackends } from "../harness.ts";
import {
  gpt2Config,
  gpt2Ref,
  gpt2Weights,
  llamaConfig,
  llamaRef,
  llamaWeights,
  logits,
  maxErr,
  writeCheckpoint,
  writeGpt2TokenizerFiles,
} from "./fixtures.ts";

const IDS = [3, 17, 200, 42, 1, 99, 271, 5, 64, 64, 128];

// Tolerance: f32 products over K ≤ 48 terms through 2 blocks, 2 RMSNorms/LayerNorms and
// softmaxes, with O(1)–O(10) activations; the measured worst error is printed by each test and
// is ~1e-5 of the logit scale. 1e-4·(1 + max|logit|) leaves an order of magnitude of margin.
const tol = (scale: number) => 1e-4 * (1 + scale);

bothBackends(
  "HF Llama: logits equal a float64 reference (GQA, untied, RoPE θ=500)",
  async (dev) => {
    const dir = await Deno.makeTempDir();
    const cfg = llamaConfig();
    const w = llamaWeights(cfg, 1, "F32");
    await writeCheckpoint(dir, cfg, w);
    const { model, arch } = await loadHfWeights(dir, dev);
    assert.equal(arch, "llama");
    assert.ok(model instanceof Llama);
    const got = await logits(dev, model, IDS);
    const { err, scale } = maxErr(got, llamaRef(cfg, w, IDS));
    console.log(
      `llama f32 ${dev.kind}: max |err| ${err.toExponential(2)}, max |logit| ${scale.toFixed(2)}`,
    );
    assert.ok(err <= tol(scale), `err ${err}`);
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test("HF Llama: variants (tied, MHA, head_dim, F16/BF16, sharded, no `model.` prefix)", async () => {
  const cases: [string, Record<string, unknown>, "F32" | "F16" | "BF16", number][] = [
    [
      "tied + MHA, bf16, 3 shards",
      { tie_word_embeddings: true, num_key_value_heads: 4 },
      "BF16",
      3,
    ],
    ["MQA (1 kv head), f16", { num_key_value_heads: 1 }, "F16", 1],
    ["explicit head_dim 6, θ 10000", { head_dim: 6, rope_theta: 10000 }, "F32", 2],
  ];
  for (const [name, over, dtype, shards] of cases) {
    const dir = await Deno.makeTempDir();
    const cfg = llamaConfig(over);
    const w = llamaWeights(cfg, 7, dtype);
    await writeCheckpoint(dir, cfg, w, { dtype, shards });
    const { model } = await loadHfWeights(dir, cpu);
    const got = await logits(cpu, model, IDS);
    const { err, scale } = maxErr(got, llamaRef(cfg, w, IDS));
    console.log(
      `llama ${name}: max |err| ${err.toExponential(2)}, max |logit| ${scale.toFixed(2)}`,
    );
    assert.ok(err <= tol(scale), `${name}: err ${err}`);
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
  // LlamaModel-style keys without the `model.` prefix load too.
  const dir = await Deno.makeTempDir();
  const cfg = llamaConfig({ tie_word_embeddings: true });
  const w = llamaWeights(cfg, 9, "F32");
  await writeCheckpoint(dir, cfg, w, { rename: (n) => n.replace(/^model\./, "") });
  const { model } = await loadHfWeights(dir, cpu);
  const { err, scale } = maxErr(await logits(cpu, model, IDS), llamaRef(cfg, w, IDS));
  assert.ok(err <= tol(scale));
  await Deno.remove(dir, { recursive: true });
});

bothBackends(
  "HF GPT-2: logits equal a float64 reference (transformer.* keys, vocab/merges)",
  async (dev) => {
    const dir = await Deno.makeTempDir();
    const cfg = gpt2Config();
    const w = gpt2Weights(cfg, 2, "F32");
    await writeCheckpoint(dir, cfg, w);
    await writeGpt2TokenizerFiles(dir);
    const { model, tokenizer } = await loadModel(dir, dev);
    assert.ok(model instanceof GPT);
    assert.equal(tokenizer.eotToken, 267);
    const got = await logits(dev, model, IDS.map((i) => i % 16));
    const { err, scale } = maxErr(got, gpt2Ref(cfg, w, IDS.map((i) => i % 16)));
    console.log(
      `gpt2 f32 ${dev.kind}: max |err| ${err.toExponential(2)}, max |logit| ${scale.toFixed(2)}`,
    );
    assert.ok(err <= tol(scale), `err ${err}`);
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test("HF GPT-2: GPT2Model keys (no `transformer.`), causal-mask buffers, lm_head copy, F16/BF16, shards", async () => {
  for (const [dtype, shards] of [["F16", 1], ["BF16", 2], ["F32", 3]] as const) {
    const dir = await Deno.makeTempDir();
    const cfg = gpt2Config({ n_positions: 12 });
    const w = gpt2Weights(cfg, 3, dtype);
    const extra = new Map([
      ["h.0.attn.bias", { shape: [1, 1, 12, 12], data: new Array(144).fill(1) }],
      ["h.1.attn.masked_bias", { shape: [], data: [-1e4] }],
      ["lm_head.weight", w.get("transformer.wte.weight")!],
    ]);
    await writeCheckpoint(dir, cfg, w, {
      dtype,
      shards,
      rename: (n) => n.replace(/^transformer\./, ""),
      extra,
    });
    const { model } = await loadHfWeights(dir, cpu);
    const ids = IDS.map((i) => i % 12).slice(0, 12);
    const { err, scale } = maxErr(await logits(cpu, model, ids), gpt2Ref(cfg, w, ids));
    console.log(`gpt2 ${dtype} ${shards} shard(s): max |err| ${err.toExponential(2)}`);
    assert.ok(err <= tol(scale), `${dtype}: err ${err}`);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HF: quantize while loading gives QuantLinears equal to quantizing afterwards", async () => {
  const dir = await Deno.makeTempDir();
  const cfg = llamaConfig();
  await writeCheckpoint(dir, cfg, llamaWeights(cfg, 4, "BF16"), { dtype: "BF16", shards: 2 });
  const f32 = (await loadHfWeights(dir, cpu)).model;
  const q = (await loadHfWeights(dir, cpu, { quantize: "nf4" })).model;
  for (const [path, lin] of f32.linears()) {
    const ql = q.linears().get(path)!;
    assert.ok(ql instanceof QuantLinear, path);
    assert.equal(ql.weight.format, "nf4");
    const ref = await QuantLinear.fromLinear(lin as never, { format: "nf4" });
    const x = Tensor.randn([3, lin.inFeatures], { seed: 5 });
    assert.deepEqual(await ql.forward(x).toArray(), await ref.forward(x).toArray(), path);
  }
  // Only embeddings, norms and lm_head stay as f32 tensors.
  const names = [...q.namedParameters().keys()];
  assert.ok(names.every((n) => !/_proj\.weight$/.test(n)), names.join(","));
  const c = cfg as { hidden_size: number; vocab_size: number };
  const f32Count = q.numParameters;
  assert.equal(f32Count, 2 * c.vocab_size * c.hidden_size + 5 * c.hidden_size);
  await Deno.remove(dir, { recursive: true });
});
