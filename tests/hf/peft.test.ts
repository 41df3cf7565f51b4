import assert from "node:assert/strict";
import {
  AdamW,
  cpu,
  GPT,
  Llama,
  loadAdapter,
  LoraLinear,
  preparePeft,
  QuantLinear,
  readAdapterConfig,
  Rng,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { loadHfWeights, loadModel, tensorFromArray, writeSafetensors } from "../../lib/io/mod.ts";
import { readSafetensors } from "../../lib/io/safetensors.ts";
import { toBf16Bits } from "../../lib/quant/f16.ts";
import { parseTrainArgs } from "../../lib/train/args.ts";
import { finetune } from "../../lib/train/finetune.ts";
import {
  gpt2Config,
  gpt2Ref,
  gpt2Weights,
  llamaConfig,
  llamaRef,
  llamaTokenizerJson,
  llamaWeights,
  maxErr,
  randWeights,
  type Weights,
  writeCheckpoint,
} from "./fixtures.ts";

/** A tiny Llama folder with its tokenizer, and a text corpus of paragraphs. */
async function llamaFolder(root: string): Promise<{ base: string; data: string }> {
  const base = `${root}/llama`;
  const cfg = llamaConfig();
  await writeCheckpoint(base, cfg, llamaWeights(cfg, 11, "BF16"), { dtype: "BF16", shards: 2 });
  await Deno.writeTextFile(`${base}/tokenizer.json`, JSON.stringify(llamaTokenizerJson()));
  const words = ["the", "hat", "sea", "tea", "heat", "that", "eat", "ate"];
  const rng = new Rng(3);
  const paras = Array.from(
    { length: 30 },
    () => Array.from({ length: 40 }, () => words[rng.int(words.length)]).join(" ") + ".",
  );
  const data = `${root}/data.txt`;
  await Deno.writeTextFile(data, paras.join("\n\n"));
  return { base, data };
}

const quiet = { log: () => {}, device: cpu };

for (const method of ["qlora", "lora"] as const) {
  Deno.test(`train --base <HF Llama folder> --method ${method}: loss drops; PEFT files load back`, async () => {
    const root = await Deno.makeTempDir();
    const fx = await llamaFolder(root);
    const args = parseTrainArgs([
      ...["--base", fx.base, "--data", fx.data, "--out", `${root}/run`, "--method", method],
      ...["--ctx", "32", "--batch", "4", "--steps", "12", "--lr", "0.01", "--eval-every", "0"],
      ...["--backend", "cpu", "--rank", "4"],
    ]);
    if ("help" in args) throw new Error("help");
    const r = await finetune(args, quiet);
    const first = r.losses.slice(0, 3).reduce((a, b) => a + b) / 3;
    const last = r.losses.slice(-3).reduce((a, b) => a + b) / 3;
    console.log(
      `llama ${method}: train loss ${first.toFixed(3)} → ${last.toFixed(3)}, ` +
        `val ${r.valBefore.toFixed(3)} → ${r.valAfter.toFixed(3)}`,
    );
    assert.ok(last < first, `${first} → ${last}`);
    assert.ok(r.valAfter < r.valBefore, `val ${r.valBefore} → ${r.valAfter}`);

    // PEFT's names and conventions for Llama.
    const cfg = JSON.parse(await Deno.readTextFile(`${root}/run/adapter_config.json`));
    assert.equal(cfg.fan_in_fan_out, false);
    assert.deepEqual(cfg.target_modules, [
      "q_proj",
      "k_proj",
      "v_proj",
      "o_proj",
      "gate_proj",
      "up_proj",
      "down_proj",
    ]);
    const file = await readSafetensors(`${root}/run/adapter_model.safetensors`);
    const a = file.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    const b = file.tensors.get("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
    assert.deepEqual(a?.shape, [4, 32]); // [r, in]
    assert.deepEqual(b?.shape, [32, 4]); // [out, r]
    assert.equal(file.tensors.size, 2 * 7 * 2);

    // Load back onto a fresh base: the adapter is applied (B ≠ 0 changes the logits).
    const { model } = await loadModel(fx.base, cpu);
    const ids = Tensor.fromArray(Int32Array.from([1, 266, 259, 261, 263, 260]), [1, 6]);
    const before = (await model.forward(ids).toArray()) as Float32Array;
    const pm = await preparePeft(model, await readAdapterConfig(`${root}/run`));
    await loadAdapter(`${root}/run`, pm);
    pm.setTraining(false);
    const l0 = [...pm.loraLayers.values()][0];
    assert.equal(l0.base instanceof QuantLinear, method === "qlora");
    const after = (await model.forward(ids).toArray()) as Float32Array;
    assert.ok(after.some((v, i) => Math.abs(v - before[i]) > 1e-4), "adapter has no effect");

    // deno task generate --adapter: the same files through the CLI.
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        "--allow-ffi=/usr/lib",
        "lib/cli/generate.ts",
        ...["--model", fx.base, "--adapter", `${root}/run`, "--prompt", "the"],
        ...["--max-tokens", "8", "--backend", "cpu", "--temperature", "0"],
      ],
      env: { XDG_RUNTIME_DIR: "/tmp/loralab-runtime" },
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.ok(text.startsWith("the"), text);
    await Deno.remove(root, { recursive: true });
  });
}

Deno.test("preparePeft on Llama: every method trains only its parameters; bitfit is a clear error", async () => {
  const root = await Deno.makeTempDir();
  const cfg = llamaConfig({ tie_word_embeddings: true });
  await writeCheckpoint(root, cfg, llamaWeights(cfg, 5, "F32"));
  const rng = new Rng(1);
  const x = Array.from({ length: 64 }, () => rng.int(272));
  const ids = Tensor.fromArray(Int32Array.from(x), [2, 32]).keep();
  const tg = Tensor.fromArray(Int32Array.from(x.map((v) => (v + 1) % 272)), [2, 32]).keep();
  const want: Record<string, (n: string) => boolean> = {
    lora: (n) => /lora_[AB]\.weight$/.test(n),
    full: () => true,
    adapter: (n) => /^model\.layers\.\d+\.adapter_(attn|mlp)\./.test(n),
    "freeze-lower": (n) => /^model\.layers\.1\./.test(n) || n === "model.norm.weight",
  };
  for (const method of Object.keys(want)) {
    const { model } = await loadHfWeights(root, cpu);
    const pm = await preparePeft(model, { method: method as "lora", seed: 2, dropout: 0 });
    const names = [...pm.trainable.keys()];
    assert.ok(names.length > 0 && names.every(want[method]), `${method}: ${names.join(",")}`);
    const lr = method === "full" ? 3e-3 : 1e-2;
    const opt = new AdamW(pm.trainable, { lr, weightDecay: 0 });
    const losses: number[] = [];
    for (let s = 0; s < 6; s++) {
      const tape = new Tape();
      tape.watch(...pm.trainable.values());
      const loss = tape.run(() => model.loss(ids, tg));
      const grads = tape.backward(loss);
      losses.push(await loss.item());
      opt.update(grads, lr);
    }
    console.log(`llama ${method}: loss ${losses[0].toFixed(4)} → ${losses.at(-1)!.toFixed(4)}`);
    assert.ok(losses.at(-1)! < losses[0], `${method}: ${losses}`);
  }
  const { model } = await loadHfWeights(root, cpu);
  await assert.rejects(
    () => preparePeft(model, { method: "bitfit" }),
    /bitfit .* llama model has none/,
  );
  // freeze-lower with every block frozen trains the tied head: norm + embedding.
  const pm = await preparePeft(model, { method: "freeze-lower", layers: 2 });
  assert.deepEqual([...pm.trainable.keys()], ["model.norm.weight", "model.embed_tokens.weight"]);
  await Deno.remove(root, { recursive: true });
});

/** An adapter folder exactly as PEFT's save_pretrained writes one (BF16 tensors here). */
async function writePeftAdapter(
  dir: string,
  config: Record<string, unknown>,
  tensors: Map<string, { shape: number[]; data: number[] }>,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/adapter_config.json`,
    JSON.stringify({
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: "tiny",
      bias: "none",
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layer_replication: null,
      layers_pattern: null,
      layers_to_transform: null,
      loftq_config: {},
      lora_alpha: 16,
      lora_dropout: 0.05,
      megatron_config: null,
      megatron_core: "megatron.core",
      modules_to_save: null,
      peft_type: "LORA",
      r: 4,
      rank_pattern: {},
      revision: null,
      target_modules: ["v_proj", "q_proj"],
      task_type: "CAUSAL_LM",
      use_dora: false,
      use_rslora: false,
      ...config,
    }),
  );
  const st = new Map();
  for (const [k, t] of tensors) {
    st.set(k, tensorFromArray("BF16", t.shape, toBf16Bits(Float32Array.from(t.data))));
  }
  await writeSafetensors(`${dir}/adapter_model.safetensors`, st, { format: "pt" });
}

/** Random A [r, in], B [out, r] rounded to bf16 (as stored), as float64 numbers. */
function loraPair(rng: Rng, r: number, inp: number, out: number) {
  const rb = (n: number) => Array.from(new Float32Array(randWeights(rng, n, 0.2, "BF16")));
  return { A: rb(r * inp), B: rb(out * r) };
}

/** (B·A)[o][i] for A [r, in], B [out, r]. */
function ba(A: number[], B: number[], r: number, inp: number, out: number): number[] {
  const d = new Array(out * inp).fill(0);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inp; i++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += B[o * r + k] * A[k * inp + i];
      d[o * inp + i] = s;
    }
  }
  return d;
}

Deno.test("PEFT-written Llama adapter (q_proj, v_proj; α/r and rsLoRA α/√r) gives the logits of W + s·B·A (float64)", async () => {
  const root = await Deno.makeTempDir();
  const cfg = llamaConfig();
  const w = llamaWeights(cfg, 8, "F32");
  await writeCheckpoint(`${root}/base`, cfg, w);
  const r = 4, C = 32, hd = 8, nkv = 2;
  const rng = new Rng(21);
  const tensors = new Map<string, { shape: number[]; data: number[] }>();
  const deltas = new Map<string, number[]>();
  for (let l = 0; l < 2; l++) {
    for (const [m, out] of [["q_proj", C], ["v_proj", nkv * hd]] as const) {
      const { A, B } = loraPair(rng, r, C, out);
      const key = `base_model.model.model.layers.${l}.self_attn.${m}`;
      tensors.set(`${key}.lora_A.weight`, { shape: [r, C], data: A });
      tensors.set(`${key}.lora_B.weight`, { shape: [out, r], data: B });
      deltas.set(`model.layers.${l}.self_attn.${m}.weight`, ba(A, B, r, C, out));
    }
  }
  const ids = [1, 266, 259, 261, 263, 260, 100, 7];
  for (const rslora of [false, true]) {
    const dir = `${root}/adapter-${rslora}`;
    await writePeftAdapter(dir, { use_rslora: rslora }, tensors);
    const s = rslora ? 16 / Math.sqrt(r) : 16 / r;
    const merged: Weights = new Map(
      [...w].map(([n, t]) => {
        const d = deltas.get(n);
        return [n, d ? { shape: t.shape, data: t.data.map((v, i) => v + s * d[i]) } : t];
      }),
    );
    const { model } = await loadHfWeights(`${root}/base`, cpu);
    const pc = await readAdapterConfig(dir);
    assert.equal(pc.method, "lora");
    const pm = await preparePeft(model, pc);
    await loadAdapter(dir, pm);
    pm.setTraining(false); // lora_dropout 0.05 is off at inference
    assert.equal(pm.loraLayers.size, 4);
    assert.equal([...pm.loraLayers.values()][0].scaling, s);
    const x = Tensor.fromArray(Int32Array.from(ids), [1, ids.length]);
    const got = (await model.forward(x).toArray()) as Float32Array;
    const { err, scale } = maxErr(got, llamaRef(cfg, merged, ids));
    console.log(
      `PEFT llama adapter (rslora ${rslora}): max |err| ${err.toExponential(2)} of ${
        scale.toFixed(2)
      }`,
    );
    assert.ok(err <= 1e-4 * (1 + scale), `err ${err}`);
  }
  // Unsupported PEFT features are named.
  await writePeftAdapter(`${root}/dora`, { use_dora: true }, tensors);
  await assert.rejects(() => readAdapterConfig(`${root}/dora`), /use_dora = true is not supported/);
  await writePeftAdapter(`${root}/re`, { target_modules: ".*q_proj" }, tensors);
  await assert.rejects(() => readAdapterConfig(`${root}/re`), /regular expression/);
  // A wrong rank is caught with the key's name.
  const bad = new Map(tensors);
  bad.set("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", {
    shape: [2, C],
    data: new Array(2 * C).fill(0),
  });
  await writePeftAdapter(`${root}/bad`, {}, bad);
  // readAdapterConfig checks r against the file's header before anything is allocated...
  await assert.rejects(
    () => readAdapterConfig(`${root}/bad`),
    /says r = 4, but .*layers\.0\.self_attn\.q_proj\.lora_A\.weight in .* is \[2,32\]/,
  );
  // ...and loadAdapter checks every shape against the prepared model.
  const { model } = await loadHfWeights(`${root}/base`, cpu);
  const pm = await preparePeft(model, await readAdapterConfig(`${root}/adapter-false`));
  await assert.rejects(
    () => loadAdapter(`${root}/bad`, pm),
    /layers\.0\.self_attn\.q_proj\.lora_A\.weight is \[2,32\], expected \[4,32\]/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("PEFT-written GPT-2 adapter (c_attn, fan_in_fan_out) gives the logits of W + s·(B·A)ᵀ (float64)", async () => {
  const root = await Deno.makeTempDir();
  const cfg = gpt2Config();
  const w = gpt2Weights(cfg, 12, "F32");
  await writeCheckpoint(`${root}/base`, cfg, w, { rename: (n) => n.replace(/^transformer\./, "") });
  const r = 4, C = 16;
  const rng = new Rng(5);
  const tensors = new Map<string, { shape: number[]; data: number[] }>();
  const merged: Weights = new Map(w);
  for (let l = 0; l < 2; l++) {
    const { A, B } = loraPair(rng, r, C, 3 * C);
    const key = `base_model.model.transformer.h.${l}.attn.c_attn`;
    tensors.set(`${key}.lora_A.weight`, { shape: [r, C], data: A });
    tensors.set(`${key}.lora_B.weight`, { shape: [3 * C, r], data: B });
    const d = ba(A, B, r, C, 3 * C); // [out, in]; Conv1D stores [in, out]
    const name = `transformer.h.${l}.attn.c_attn.weight`;
    const t = w.get(name)!;
    merged.set(name, {
      shape: t.shape,
      data: t.data.map((v, j) => v + 4 * d[(j % (3 * C)) * C + Math.floor(j / (3 * C))]),
    });
  }
  const dir = `${root}/adapter`;
  await writePeftAdapter(dir, { fan_in_fan_out: true, target_modules: ["c_attn"] }, tensors);
  const { model } = await loadHfWeights(`${root}/base`, cpu);
  assert.ok(model instanceof GPT);
  const pm = await preparePeft(model, await readAdapterConfig(dir));
  await loadAdapter(dir, pm);
  pm.setTraining(false);
  assert.ok([...pm.loraLayers.values()].every((l) => l instanceof LoraLinear));
  const ids = [3, 1, 4, 1, 5, 9, 2, 6];
  const x = Tensor.fromArray(Int32Array.from(ids), [1, ids.length]);
  const got = (await model.forward(x).toArray()) as Float32Array;
  const { err, scale } = maxErr(got, gpt2Ref(cfg, merged, ids));
  console.log(`PEFT gpt2 adapter: max |err| ${err.toExponential(2)} of ${scale.toFixed(2)}`);
  assert.ok(err <= 1e-4 * (1 + scale), `err ${err}`);
  // And ours for GPT-2 say fan_in_fan_out true (unchanged), for Llama false (tested above).
  assert.ok(!(model instanceof Llama));
  assert.equal(model.peftLayout.fanInFanOut, true);
  await Deno.remove(root, { recursive: true });
});
