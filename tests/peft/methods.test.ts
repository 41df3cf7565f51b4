import assert from "node:assert/strict";
import {
  AdamW,
  type Backend,
  cpu,
  GPT,
  type GPTConfig,
  gptParameterCount,
  loadAdapter,
  LoraLinear,
  type Method,
  METHODS,
  type PeftConfig,
  type PeftModel,
  preparePeft,
  QuantLinear,
  readAdapterConfig,
  Rng,
  saveAdapter,
  scope,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { bothBackends } from "../harness.ts";

const tiny: GPTConfig = { vocab_size: 29, n_positions: 16, n_embd: 64, n_layer: 2, n_head: 2 };

function batch(dev: Backend, seed: number) {
  // A learnable pattern: next token = (token + 1) mod V.
  const rng = new Rng(seed);
  const xs: number[] = [], ys: number[] = [];
  for (let b = 0; b < 4; b++) {
    let t = rng.int(29);
    for (let i = 0; i < 16; i++) {
      xs.push(t);
      t = (t + 1) % 29;
      ys.push(t);
    }
  }
  return {
    x: Tensor.fromArray(xs, [4, 16], { device: dev, dtype: "i32" }).keep(),
    y: Tensor.fromArray(ys, [4, 16], { device: dev, dtype: "i32" }).keep(),
  };
}

async function train(pm: PeftModel, dev: Backend, steps: number, lr: number): Promise<number[]> {
  const opt = new AdamW(pm.trainable, {
    lr,
    weightDecay: 0,
  });
  const { x, y } = batch(dev, 1);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    losses.push(
      await scope(async () => {
        const tape = new Tape();
        tape.watch(...pm.trainable.values());
        const loss = tape.run(() => pm.model.loss(x, y));
        const grads = tape.backward(loss);
        pm.maskGrads(grads);
        opt.update(grads);
        return await loss.item();
      }),
    );
  }
  return losses;
}

async function snapshot(m: GPT): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, t] of m.namedParameters()) out.set(n, Float32Array.from(await t.toArray()));
  return out;
}

function calib(dev: Backend) {
  return [batch(dev, 5), batch(dev, 6)];
}

const lrs: Record<Method, number> = {
  qlora: 1e-2,
  lora: 1e-2,
  full: 3e-3,
  adapter: 1e-2,
  bitfit: 3e-2,
  "freeze-lower": 3e-3,
  sparse: 3e-2,
};

for (const method of METHODS) {
  Deno.test(`method ${method}: trains only its parameters and lowers the loss [cpu]`, async () => {
    const model = GPT.init(tiny, { device: cpu, seed: 1 });
    const pm = await preparePeft(model, { method, seed: 2, dropout: 0 }, calib(cpu));
    const before = await snapshot(model);
    const trainable = new Set(pm.trainable.values());
    const losses = await train(pm, cpu, 25, lrs[method]);
    assert.ok(losses[24] < losses[0] - 0.1, `${method}: loss ${losses[0]} → ${losses[24]}`);
    const after = model.namedParameters();
    let changed = 0;
    for (const [n, t] of after) {
      const a = await t.toArray(), b = before.get(n)!;
      const same = a.every((v, i) => v === b[i]);
      if (trainable.has(t)) {
        if (!same) changed++;
        if (method === "sparse") {
          // masked-out entries are bit-identical
          const m = await pm.masks.get(t)!.toArray();
          assert.ok(a.every((v, i) => m[i] === 1 || v === b[i]), `${n}: a masked entry moved`);
        }
      } else assert.ok(same, `${method}: frozen ${n} changed`);
    }
    if (method !== "lora" && method !== "qlora" && method !== "adapter") assert.ok(changed > 0);
    const c = pm.counts();
    assert.ok(c.trainable > 0 && c.frozen > 0 || method === "full");
    const added = method === "lora" || method === "qlora" || method === "adapter" ? c.trainable : 0;
    assert.equal(c.total, gptParameterCount(tiny) + added);
  });
}

bothBackends("QLoRA: NF4 base, honest counts, the loss drops", async (dev) => {
  const model = GPT.init(tiny, { device: dev, seed: 1 });
  const pm = await preparePeft(model, { method: "qlora", seed: 3, dropout: 0.05 });
  for (const l of model.linears().values()) {
    assert.ok(
      l instanceof LoraLinear && l.base instanceof QuantLinear && l.base.weight.format === "nf4",
    );
  }
  const c = pm.counts();
  // r=8 on c_attn [64→192], c_proj [64→64], c_fc [64→256], mlp.c_proj [256→64], 2 blocks
  const perBlock = 8 * (64 + 192) + 8 * (64 + 64) + 8 * (64 + 256) + 8 * (256 + 64);
  assert.equal(c.trainable, 2 * perBlock);
  assert.equal(c.baseLinearBytesF32, 2 * 4 * (64 * 192 + 64 * 64 + 64 * 256 + 256 * 64));
  assert.ok(
    c.baseLinearBytes / c.baseLinearBytesF32 < 4.2 / 32,
    `NF4+DQ ratio ${c.baseLinearBytes / c.baseLinearBytesF32}`,
  );
  assert.equal(c.optimizerBytes, 8 * c.trainable);
  const losses = await train(pm, dev, 15, 1e-2);
  assert.ok(losses[14] < losses[0] - 0.1, `loss ${losses[0]} → ${losses[14]}`);
});

Deno.test("targets: only the named modules get adapters; unknown targets are an error", async () => {
  const model = GPT.init(tiny, { device: cpu, seed: 1 });
  const pm = await preparePeft(model, { method: "lora", targets: ["c_attn"] });
  assert.deepEqual([...pm.loraLayers.keys()], [
    "transformer.h.0.attn.c_attn",
    "transformer.h.1.attn.c_attn",
  ]);
  const m2 = GPT.init(tiny, { device: cpu, seed: 1 });
  await assert.rejects(
    () => preparePeft(m2, { method: "lora", targets: ["q_proj"] }),
    /match no linear layer/,
  );
  await assert.rejects(
    () => preparePeft(m2, { method: "qlora", quant: "none" }),
    /qlora needs a quantized base/,
  );
  await assert.rejects(() => preparePeft(m2, { method: "full", quant: "nf4" }), /must stay f32/);
});

Deno.test("PEFT files: adapter_config.json fields, key names, round trip, mismatches rejected", async () => {
  const dir = await Deno.makeTempDir();
  const model = GPT.init(tiny, { device: cpu, seed: 1 });
  const cfg: PeftConfig = { method: "qlora", r: 4, alpha: 8, seed: 1, dropout: 0 };
  const pm = await preparePeft(model, cfg);
  await train(pm, cpu, 3, 1e-2); // make B non-zero
  await saveAdapter(dir, pm, "loralab/base");
  const j = JSON.parse(await Deno.readTextFile(`${dir}/adapter_config.json`));
  assert.equal(j.peft_type, "LORA");
  assert.equal(j.task_type, "CAUSAL_LM");
  assert.equal(j.r, 4);
  assert.equal(j.lora_alpha, 8);
  assert.equal(j.fan_in_fan_out, true);
  assert.deepEqual(j.target_modules, ["c_attn", "c_proj", "c_fc"]);
  assert.equal(j.base_model_name_or_path, "loralab/base");
  for (const k of ["lora_dropout", "bias", "use_rslora", "inference_mode"]) assert.ok(k in j, k);
  const { readSafetensors } = await import("../../lib/io/mod.ts");
  const f = await readSafetensors(`${dir}/adapter_model.safetensors`);
  assert.deepEqual(
    f.tensors.get("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight")!.shape,
    [4, 64],
  );
  assert.deepEqual(
    f.tensors.get("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight")!.shape,
    [192, 4],
  );
  assert.equal(f.tensors.size, 2 * 4 * 2);
  // round trip into a fresh model prepared from the saved config
  const model2 = GPT.init(tiny, { device: cpu, seed: 1 });
  const pm2 = await preparePeft(model2, await readAdapterConfig(dir));
  await loadAdapter(dir, pm2);
  for (const [n, t] of pm.trainable) {
    assert.deepEqual(await pm2.trainable.get(n)!.toArray(), await t.toArray(), n);
  }
  const x = batch(cpu, 9);
  pm.setTraining(false);
  pm2.setTraining(false);
  assert.equal(await model2.loss(x.x, x.y).item(), await model.loss(x.x, x.y).item());
  // wrong rank
  const m3 = GPT.init(tiny, { device: cpu, seed: 1 });
  const pm3 = await preparePeft(m3, { ...cfg, r: 2 });
  await assert.rejects(
    () => loadAdapter(dir, pm3),
    /lora_A.weight is \[4,64\], expected \[2,64\] \(wrong rank/,
  );
  // unknown module
  const m4 = GPT.init(tiny, { device: cpu, seed: 1 });
  const pm4 = await preparePeft(m4, { ...cfg, targets: ["c_fc"] });
  await assert.rejects(() => loadAdapter(dir, pm4), /names no LoRA layer of this model/);
  await assert.rejects(() => readAdapterConfig(`${dir}/nope`), /cannot read/);
  const bitfit = await preparePeft(GPT.init(tiny, { device: cpu }), { method: "bitfit" });
  await assert.rejects(() => saveAdapter(dir, bitfit, "x"), /not bitfit/);
  await Deno.remove(dir, { recursive: true });
});
