// Merging a LoRA/QLoRA adapter into its base (lib/peft/merge.ts): the merged folder, read back
// by loadModel with no adapter, gives the logits of base + adapter; the merged weights are
// W + s·B·A computed here in float64 (transposed for GPT-2's Conv1D) and rounded once to the
// base's dtype; names, config and tokenizer files are the base's.
import assert from "node:assert/strict";
import {
  type Backend,
  ByteTokenizer,
  cpu,
  GPT,
  type PeftConfig,
  preparePeft,
  saveAdapter,
  Tensor,
} from "../../lib/mod.ts";
import { loadModel, readSafetensors, saveBnbModel, saveModel } from "../../lib/io/mod.ts";
import { tensorView } from "../../lib/io/safetensors.ts";
import { loadWithAdapter } from "../../lib/peft/load_adapted.ts";
import { mergeAdapter } from "../../lib/peft/merge.ts";
import { fromBf16Bits, fromF16Bits } from "../../lib/quant/f16.ts";
import { gpu } from "../harness.ts";
import { rneTo } from "../ref.ts";
import {
  gpt2Config,
  gpt2Weights,
  llamaConfig,
  llamaTokenizerJson,
  llamaWeights,
  writeCheckpoint,
  writeGpt2TokenizerFiles,
} from "../hf/fixtures.ts";

const IDS = [3, 17, 200, 42, 1, 99, 256, 5, 64, 64, 128, 7];

/** Trains nothing: a LoRA adapter with random A (its init) and random B, saved in PEFT format. */
async function writeAdapter(base: string, dir: string, cfg: PeftConfig, seed: number) {
  const bnb = JSON.parse(await Deno.readTextFile(`${base}/config.json`)).quantization_config;
  const { model } = await loadModel(base, cpu, bnb ? { quantize: cfg.quant } : {});
  const pm = await preparePeft(model, { seed, ...cfg });
  let i = 0;
  for (const l of pm.loraLayers.values()) {
    l.loraB.dispose();
    l.loraB = Tensor.randn(l.loraB.shape, { device: cpu, seed: seed * 100 + i++, std: 0.1 })
      .keep();
  }
  await saveAdapter(dir, pm, base);
  model.dispose();
}

async function logits(dev: Backend, model: { forward(ids: Tensor): Tensor }) {
  const x = Tensor.fromArray(Int32Array.from(IDS), [1, IDS.length], { device: dev, dtype: "i32" });
  const y = model.forward(x);
  const out = (await y.toArray()) as Float32Array;
  x.dispose();
  y.dispose();
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Merged folder vs base + adapter: max |logit diff| on `dev` (and vs the base alone). */
async function compare(dev: Backend, base: string, adapter: string, out: string) {
  const merged = (await loadModel(out, dev)).model;
  const adapted = await loadWithAdapter(base, adapter, dev);
  const plain = (await loadModel(base, dev)).model;
  const [m, a, p] = [
    await logits(dev, merged),
    await logits(dev, adapted.model),
    await logits(dev, plain),
  ];
  for (const x of [merged, adapted.model, plain]) x.dispose();
  return { diff: maxDiff(m, a), effect: maxDiff(a, p) };
}

/** A stored tensor as float64 numbers. */
function values(t: { dtype: string; shape: number[]; data: Uint8Array }): number[] {
  const v = tensorView(t as Parameters<typeof tensorView>[0]);
  if (t.dtype === "F16") return Array.from(fromF16Bits(v as Uint16Array));
  if (t.dtype === "BF16") return Array.from(fromBf16Bits(v as Uint16Array));
  return Array.from(v as Float32Array);
}

/** s·B·A [out, in] in float64 from the adapter file. */
async function delta(
  adapter: string,
  path: string,
): Promise<{ d: number[]; O: number; I: number }> {
  const cfg = JSON.parse(await Deno.readTextFile(`${adapter}/adapter_config.json`));
  const f = (await readSafetensors(`${adapter}/adapter_model.safetensors`)).tensors;
  const A = values(f.get(`base_model.model.${path}.lora_A.weight`)!);
  const B = values(f.get(`base_model.model.${path}.lora_B.weight`)!);
  const [r, I] = f.get(`base_model.model.${path}.lora_A.weight`)!.shape;
  const O = B.length / r;
  const s = cfg.use_rslora ? cfg.lora_alpha / Math.sqrt(r) : cfg.lora_alpha / r;
  const d: number[] = [];
  for (let o = 0; o < O; o++) {
    for (let i = 0; i < I; i++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += B[o * r + k] * A[k * I + i];
      d.push(s * acc);
    }
  }
  return { d, O, I };
}

Deno.test("merge: HF GPT-2 (GPT2Model names, F32) and Llama (rsLoRA) merge to the logits of base + adapter", async () => {
  const root = await Deno.makeTempDir();
  // GPT-2 stored as GPT2Model (no `transformer.` prefix) with a causal-mask buffer.
  const gcfg = gpt2Config();
  await writeCheckpoint(`${root}/gpt2`, gcfg, gpt2Weights(gcfg, 3, "F32"), {
    rename: (n) => n.replace(/^transformer\./, ""),
    extra: new Map([["h.0.attn.bias", { shape: [1, 1, 4, 4], data: new Array(16).fill(1) }]]),
  });
  await writeGpt2TokenizerFiles(`${root}/gpt2`);
  await writeAdapter(`${root}/gpt2`, `${root}/a-gpt2`, {
    method: "lora",
    r: 4,
    alpha: 8,
    targets: ["c_attn", "c_fc"],
  }, 1);
  const lcfg = llamaConfig();
  await writeCheckpoint(`${root}/llama`, lcfg, llamaWeights(lcfg, 4, "F32"), { shards: 2 });
  await Deno.writeTextFile(`${root}/llama/tokenizer.json`, JSON.stringify(llamaTokenizerJson()));
  await writeAdapter(`${root}/llama`, `${root}/a-llama`, {
    method: "lora",
    r: 4,
    alpha: 16,
    rslora: true,
    targets: ["q_proj", "v_proj", "down_proj"],
  }, 2);

  for (const arch of ["gpt2", "llama"]) {
    const [base, adapter, out] = [`${root}/${arch}`, `${root}/a-${arch}`, `${root}/m-${arch}`];
    const plan = await mergeAdapter(base, adapter, out);
    assert.equal(plan.merged.length, arch === "gpt2" ? 4 : 6);
    // The logits of the merged folder (no adapter) are those of base + adapter.
    const { diff, effect } = await compare(cpu, base, adapter, out);
    console.log(
      `merge ${arch} [cpu]: max |logit diff| ${diff.toExponential(2)} (adapter moved ` +
        `logits by up to ${effect.toFixed(3)})`,
    );
    assert.ok(diff <= 1e-5, `${arch}: ${diff}`);
    assert.ok(effect > 1e-2, `${arch}: the adapter should change the logits (${effect})`);
    // config.json: the base's, torch_dtype float32, no quantization_config.
    const cfg = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
    assert.equal(cfg.torch_dtype, "float32");
    assert.equal(cfg.model_type, arch);
    assert.equal(cfg.quantization_config, undefined);
    // The merged file holds the base's names (sharded base → one file).
    const got = (await readSafetensors(`${out}/model.safetensors`)).tensors;
    const names: string[] = [];
    for await (const e of Deno.readDir(base)) {
      if (!e.name.endsWith(".safetensors")) continue;
      names.push(...(await readSafetensors(`${base}/${e.name}`)).tensors.keys());
    }
    assert.deepEqual([...got.keys()].sort(), names.sort());
  }
  // Tokenizer files copied byte for byte.
  for (
    const [arch, f] of [["gpt2", "vocab.json"], ["gpt2", "merges.txt"], ["llama", "tokenizer.json"]]
  ) {
    assert.deepEqual(
      await Deno.readFile(`${root}/m-${arch}/${f}`),
      await Deno.readFile(`${root}/${arch}/${f}`),
    );
  }
  // The weights themselves: W + s·B·A in float64, rounded once to f32. GPT-2's Conv1D stores
  // [in, out], so the update goes in transposed; a linear without adapter is unchanged.
  const gBase = (await readSafetensors(`${root}/gpt2/model.safetensors`)).tensors;
  const gOut = (await readSafetensors(`${root}/m-gpt2/model.safetensors`)).tensors;
  const { d, O, I } = await delta(`${root}/a-gpt2`, "transformer.h.1.attn.c_attn");
  const W = values(gBase.get("h.1.attn.c_attn.weight")!); // [I, O]
  assert.deepEqual(
    values(gOut.get("h.1.attn.c_attn.weight")!),
    W.map((w, j) => Math.fround(w + d[(j % O) * I + Math.floor(j / O)])),
  );
  assert.deepEqual(gOut.get("h.1.attn.c_proj.weight"), gBase.get("h.1.attn.c_proj.weight"));
  assert.deepEqual(gOut.get("h.0.attn.bias"), gBase.get("h.0.attn.bias"));
  const lOut = (await readSafetensors(`${root}/m-llama/model.safetensors`)).tensors;
  const lw = llamaWeights(lcfg, 4, "F32").get("model.layers.0.self_attn.q_proj.weight")!.data;
  const q = await delta(`${root}/a-llama`, "model.layers.0.self_attn.q_proj"); // [out, in]
  assert.deepEqual(
    values(lOut.get("model.layers.0.self_attn.q_proj.weight")!),
    lw.map((w, j) => Math.fround(w + q.d[j])),
  );
  // One WebGPU check: the merged folder and base + adapter on the GPU backend.
  const dev = await gpu();
  const g = await compare(dev, `${root}/llama`, `${root}/a-llama`, `${root}/m-llama`);
  console.log(`merge llama [webgpu]: max |logit diff| ${g.diff.toExponential(2)}`);
  assert.ok(g.diff <= 1e-5, `webgpu: ${g.diff}`);
  await Deno.remove(root, { recursive: true });
});

Deno.test("merge: F16 and BF16 bases stay F16/BF16, each weight rounded once to nearest even", async () => {
  const root = await Deno.makeTempDir();
  for (const [arch, dtype] of [["gpt2", "F16"], ["llama", "BF16"]] as const) {
    const base = `${root}/${arch}`;
    const cfg = arch === "gpt2" ? gpt2Config() : llamaConfig();
    const w = arch === "gpt2" ? gpt2Weights(cfg, 5, dtype) : llamaWeights(cfg, 6, dtype);
    await writeCheckpoint(base, cfg, w, { dtype });
    if (arch === "gpt2") await writeGpt2TokenizerFiles(base);
    else await Deno.writeTextFile(`${base}/tokenizer.json`, JSON.stringify(llamaTokenizerJson()));
    const targets = arch === "gpt2" ? ["c_attn"] : ["o_proj"];
    await writeAdapter(base, `${root}/a-${arch}`, { method: "lora", r: 3, alpha: 6, targets }, 7);
    await mergeAdapter(base, `${root}/a-${arch}`, `${root}/m-${arch}`);
    assert.equal(
      JSON.parse(await Deno.readTextFile(`${root}/m-${arch}/config.json`)).torch_dtype,
      dtype === "F16" ? "float16" : "bfloat16",
    );
    const got = (await readSafetensors(`${root}/m-${arch}/model.safetensors`)).tensors;
    for (const t of got.values()) assert.equal(t.dtype, dtype);
    const path = arch === "gpt2"
      ? "transformer.h.0.attn.c_attn"
      : "model.layers.1.self_attn.o_proj";
    const { d, O, I } = await delta(`${root}/a-${arch}`, path);
    const W = w.get(`${path}.weight`)!.data;
    const round = (x: number) => dtype === "F16" ? rneTo(x, 10, -14) : rneTo(x, 7, -126);
    const want = arch === "gpt2"
      ? W.map((x, j) => round(x + d[(j % O) * I + Math.floor(j / O)]))
      : W.map((x, j) => round(x + d[j]));
    assert.deepEqual(values(got.get(`${path}.weight`)!), want);
    // The update is larger than the rounding: the weights did change.
    assert.ok(want.some((x, j) => x !== W[j]));
  }
  await Deno.remove(root, { recursive: true });
});

Deno.test("merge: a QLoRA adapter merges into the de-quantized base (loralab folder and bitsandbytes folder)", async () => {
  const root = await Deno.makeTempDir();
  const gpt = GPT.init(
    { vocab_size: 260, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 2 },
    { device: cpu, seed: 11 },
  );
  await saveModel(`${root}/own`, gpt, new ByteTokenizer());
  await saveBnbModel(`${root}/bnb`, gpt, new ByteTokenizer(), { quantType: "fp4", blockSize: 32 });
  gpt.dispose();
  for (const [name, quant] of [["own", "nf4"], ["bnb", "fp4"]] as const) {
    const [base, adapter, out] = [`${root}/${name}`, `${root}/a-${name}`, `${root}/m-${name}`];
    await writeAdapter(base, adapter, {
      method: "qlora",
      quant,
      r: 4,
      alpha: 8,
      targets: ["c_attn"],
    }, 3);
    const plan = await mergeAdapter(base, adapter, out);
    assert.equal(plan.quant, quant);
    assert.equal(plan.bnbBase, name === "bnb" ? "fp4" : null);
    const { diff, effect } = await compare(cpu, base, adapter, out);
    console.log(`merge qlora ${quant} (${name} base): max |logit diff| ${diff.toExponential(2)}`);
    assert.ok(diff <= 1e-5, `${name}: ${diff}`);
    assert.ok(effect > 1e-2);
    const cfg = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
    assert.equal(cfg.quantization_config, undefined);
    const got = (await readSafetensors(`${out}/model.safetensors`)).tensors;
    for (const [n, t] of got) assert.equal(t.dtype, "F32", n);
    assert.ok(![...got.keys()].some((n) => /absmax|quant_map|quant_state/.test(n)));
    // Even a linear without adapter is the de-quantized one (what the adapter was trained on),
    // not the original f32 weight.
    const orig = (await readSafetensors(`${root}/own/model.safetensors`)).tensors;
    const k = "transformer.h.0.mlp.c_fc.weight";
    const a = values(got.get(k)!), b = values(orig.get(k)!);
    assert.ok(a.some((x, j) => x !== b[j]), "quantization error is present");
    // The first 32 weights of row 0 in [out, in] order (stored [in, out]: every 128th) lie in
    // one 4-bit block: at most 16 distinct values, where the f32 original has 32.
    const block = (v: number[]) => new Set(Array.from({ length: 32 }, (_, i) => v[i * 128])).size;
    assert.equal(block(b), 32);
    assert.ok(block(a) <= 16, `one 4-bit block holds ${block(a)} values`);
  }
  await Deno.remove(root, { recursive: true });
});
