// One runner over every registered model family (lib/models/registry.ts), on both backends, as
// mlx-lm's model_test_runner: a family added to ARCHITECTURES is tested here with no new test
// code. Each family is built from its own small random config (Architecture.smallConfig, seeded)
// and checked for:
// - the registry finds it by every model_type and architectures name it claims;
// - forward: logits [B, T, V], a finite loss;
// - forwardCached (where the family has it): the prompt, then one token at a time, gives
//   forward's logits;
// - namedParameters == expectedTensors (names and shapes), canonical names map to themselves,
//   config.json round trips (configFromHf ∘ configToHf);
// - its default LoRA targets name linears of the model, and every block linear is one;
// - save → load: config.json + model.safetensors read back by the Hugging Face loader (every
//   family) and by saveModel/loadModel (families with their own folder; the others refuse
//   saveModel clearly), the same parameters bit for bit and the same logits;
// - LoRA adapter files: PEFT's keys `base_model.model.<path>.lora_A.weight` [r, in] and
//   `…lora_B.weight` [out, r] for exactly the targeted linears, fan_in_fan_out as the family
//   says, and the adapter loads back.
import assert from "node:assert/strict";
import {
  type Backend,
  ByteTokenizer,
  type CausalLM,
  preparePeft,
  Rng,
  saveAdapter,
  Tensor,
} from "../../lib/mod.ts";
import {
  loadHfWeights,
  loadModel,
  readSafetensors,
  type SavableModel,
  saveModel,
  tensorFromArray,
  writeSafetensors,
} from "../../lib/io/mod.ts";
import type { Architecture } from "../../lib/models/architecture.ts";
import { ARCHITECTURES, archOf } from "../../lib/models/registry.ts";
import { loadAdapter, readAdapterConfig } from "../../lib/peft/peft_files.ts";
import { assertClose, bothBackends } from "../harness.ts";

const B = 2;

/** Token ids i32 [B, T] drawn from `rng`. */
function randomIds(rng: Rng, V: number, T: number): number[] {
  return Array.from({ length: B * T }, () => rng.int(V));
}

function ids(dev: Backend, data: number[], T: number): Tensor {
  return Tensor.fromArray(data, [B, T], { device: dev, dtype: "i32" });
}

/** Every parameter's values, by name. */
async function params(m: CausalLM): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [n, t] of m.namedParameters()) out.set(n, Array.from(await t.toArray()));
  return out;
}

/** Shapes by name, sorted by name (parameter order is the model's, expected order the file's). */
function shapes(m: Map<string, readonly number[]>): [string, number[]][] {
  return [...m].map(([n, s]) => [n, [...s]] as [string, number[]]).sort(([a], [b]) =>
    a < b ? -1 : 1
  );
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "loralab_conformance_" });
}

// Three draws per family (seeds picked once to cover single and grouped heads, tied and untied
// outputs, biases, an explicit head_dim); every draw runs every check.
const SEEDS = [1021, 1119, 1287];

for (const [index, arch] of (ARCHITECTURES as readonly Architecture[]).entries()) {
  for (const [draw, seed0] of SEEDS.entries()) {
    const seed = seed0 + index;
    const config = arch.smallConfig(new Rng(seed));
    const name = `${arch.name} #${draw}`;

    Deno.test(`conformance ${name}: the registry finds it by each of its names`, () => {
      console.log(`${name}: ${JSON.stringify(config)}`);
      for (const t of arch.modelTypes) assert.equal(archOf({ model_type: t }), arch);
      for (const h of arch.hfNames) assert.equal(archOf({ architectures: [h] }), arch);
      // config.json round trip: a second pass changes nothing, and the tensors are the same.
      const again = arch.configFromHf(arch.configToHf(config));
      assert.deepEqual(arch.configFromHf(arch.configToHf(again)), again);
      assert.equal(archOf(arch.configToHf(config)), arch);
      assert.deepEqual(shapes(arch.expectedTensors(again)), shapes(arch.expectedTensors(config)));
    });

    bothBackends(`conformance ${name}: forward, parameters, default targets`, async (dev) => {
      const m = arch.init(config, { device: dev, seed });
      try {
        assert.equal(m.arch, arch.name);
        assert.equal(m.vocabSize, arch.vocabSize(config));
        assert.deepEqual(m.peftLayout, arch.peftLayout);
        // namedParameters == expectedTensors: the same names and shapes.
        const got = new Map([...m.namedParameters()].map(([n, t]) => [n, t.shape]));
        const want = arch.expectedTensors(config);
        assert.deepEqual(shapes(got), shapes(want));
        let count = 0;
        for (const s of want.values()) count += s.reduce((a, b) => a * b, 1);
        assert.equal(m.numParameters, count);
        assert.ok(arch.paramCount(config) <= count, "paramCount is a lower bound");
        const canonical = arch.canonicalName(config);
        for (const n of want.keys()) assert.equal(canonical(n), n, `canonical(${n})`);
        // Default targets: each names at least one linear, and every block linear is one.
        const linears = [...m.linears().keys()];
        assert.ok(linears.length > 0);
        const targets = arch.peftLayout.defaultTargets;
        for (const t of targets) {
          assert.ok(linears.some((p) => p.endsWith(`.${t}`)), `target ${t} names no linear`);
        }
        for (const p of linears) {
          assert.ok(targets.some((t) => p.endsWith(`.${t}`)), `${p} is not a default target`);
          assert.ok(m.blockIndex(p) >= 0 && m.blockIndex(p) < m.numLayers, p);
          for (const [n, t] of m.linears().get(p)!.parameters()) {
            assert.deepEqual(want.get(`${p}.${n}`), t.shape, `${p}.${n}`);
          }
        }
        // forward: logits [B, T, V] and a finite loss.
        const T = Math.min(7, m.contextLength);
        const rng = new Rng(seed + 1);
        const x = ids(dev, randomIds(rng, m.vocabSize, T), T);
        const y = ids(dev, randomIds(rng, m.vocabSize, T), T);
        const logits = m.forward(x);
        assert.deepEqual(logits.shape, [B, T, m.vocabSize]);
        const loss = (await m.loss(x, y).toArray())[0];
        assert.ok(Number.isFinite(loss) && loss > 0, `loss ${loss}`);
      } finally {
        m.dispose();
      }
    });

    bothBackends(`conformance ${name}: forwardCached gives forward's logits`, async (dev) => {
      const m = arch.init(config, { device: dev, seed });
      try {
        if (!m.forwardCached) return; // optional in CausalLM: generate() re-reads the window
        const T = m.contextLength, P = Math.min(3, T), V = m.vocabSize;
        const all = randomIds(new Rng(seed + 2), V, T); // [B, T]
        const full = Array.from(await m.forward(ids(dev, all, T)).toArray()); // [B, T, V]
        const col = (t0: number, n: number) =>
          [0, 1].flatMap((b) => all.slice(b * T + t0, b * T + t0 + n));
        const got = new Array<number>(B * T * V);
        const put = async (logits: Tensor, t0: number, n: number) => {
          const a = await logits.toArray(); // [B, n, V]
          for (let b = 0; b < B; b++) {
            for (let i = 0; i < n * V; i++) got[(b * T + t0) * V + i] = a[b * n * V + i];
          }
        };
        let r = m.forwardCached(ids(dev, col(0, P), P), null);
        await put(r.logits, 0, P);
        for (let t = P; t < T; t++) {
          r = m.forwardCached(ids(dev, col(t, 1), 1), r.cache);
          assert.equal(r.cache.length, t + 1);
          await put(r.logits, t, 1);
        }
        // The same sums in other orders, float32, a few narrow blocks: 1e-5 relative to the
        // largest logit (the families' own cache tests use 1e-5 on O(0.1) logits).
        const scale = Math.max(1, ...full.map(Math.abs));
        assertClose(got, full, 1e-5 * scale, "cached vs full logits");
      } finally {
        m.dispose();
      }
    });

    bothBackends(`conformance ${name}: config.json + safetensors load back`, async (dev) => {
      const m = arch.init(config, { device: dev, seed });
      const dir = await tempDir();
      const loaded: CausalLM[] = [];
      try {
        const before = await params(m);
        const T = Math.min(5, m.contextLength);
        const x = randomIds(new Rng(seed + 3), m.vocabSize, T);
        const logits = Array.from(await m.forward(ids(dev, x, T)).toArray());
        const check = async (other: CausalLM, what: string) => {
          loaded.push(other);
          assert.equal(other.arch, arch.name, what);
          const after = await params(other);
          assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), what);
          for (const [n, v] of before) assert.deepEqual(after.get(n), v, `${what}: ${n}`);
          const again = Array.from(await other.forward(ids(dev, x, T)).toArray());
          assertClose(again, logits, 0, `${what}: logits`);
        };
        // A Hugging Face folder: config.json and model.safetensors under the canonical names.
        await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(arch.configToHf(config)));
        const tensors = new Map();
        for (const [n, v] of before) {
          const shape = [...m.namedParameters().get(n)!.shape];
          tensors.set(n, tensorFromArray("F32", shape, Float32Array.from(v)));
        }
        await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt" });
        await check((await loadHfWeights(dir, dev)).model, "loadHfWeights");
        // loralab's own folder, where the family has one.
        const own = `${dir}/own`;
        const tok = new ByteTokenizer();
        if (arch.ownFolder) {
          await saveModel(own, m as SavableModel, tok);
          await check((await loadModel(own, dev)).model, "saveModel → loadModel");
        } else {
          await assert.rejects(
            () => saveModel(own, m as SavableModel, tok),
            /saveModel: .* models have no loralab model folder format/,
          );
        }
      } finally {
        for (const l of loaded) l.dispose();
        m.dispose();
        await Deno.remove(dir, { recursive: true });
      }
    });

    bothBackends(`conformance ${name}: LoRA adapter files`, async (dev) => {
      const m = arch.init(config, { device: dev, seed });
      const dir = await tempDir();
      try {
        const r = 2;
        const pm = await preparePeft(m, { method: "lora", r, seed });
        const targets = arch.peftLayout.defaultTargets;
        assert.deepEqual(pm.config.targets, [...targets]);
        assert.deepEqual([...pm.loraLayers.keys()].sort(), [...m.linears().keys()].sort());
        const rng = new Rng(seed + 4);
        for (const l of pm.loraLayers.values()) { // B starts at zero: give it values to round trip
          const old = l.loraB;
          l.loraB = Tensor.randn([...old.shape], { device: dev, rng, std: 0.1 }).keep();
          old.dispose();
        }
        await saveAdapter(dir, pm, "base");
        const cfg = JSON.parse(await Deno.readTextFile(`${dir}/adapter_config.json`));
        assert.equal(cfg.fan_in_fan_out, arch.peftLayout.fanInFanOut);
        assert.deepEqual(cfg.target_modules, [...targets]);
        const file = await readSafetensors(`${dir}/adapter_model.safetensors`);
        const want: [string, number[]][] = [];
        for (const [path, lin] of pm.loraLayers) {
          want.push([`base_model.model.${path}.lora_A.weight`, [r, lin.inFeatures]]);
          want.push([`base_model.model.${path}.lora_B.weight`, [lin.outFeatures, r]]);
        }
        const got = new Map([...file.tensors].map(([n, t]) => [n, t.shape]));
        assert.deepEqual(shapes(got), shapes(new Map(want)));
        // Loads back onto a fresh model of the family: the same A and B.
        const fresh = arch.init(config, { device: dev, seed: seed + 5 });
        try {
          const pm2 = await preparePeft(fresh, await readAdapterConfig(dir));
          await loadAdapter(dir, pm2);
          for (const [path, l] of pm.loraLayers) {
            const l2 = pm2.loraLayers.get(path)!;
            assert.deepEqual(
              Array.from(await l2.loraA.toArray()),
              Array.from(await l.loraA.toArray()),
            );
            assert.deepEqual(
              Array.from(await l2.loraB.toArray()),
              Array.from(await l.loraB.toArray()),
            );
          }
        } finally {
          fresh.dispose();
        }
      } finally {
        m.dispose();
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}
