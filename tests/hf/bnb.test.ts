// bitsandbytes 4-bit checkpoints. The tests write such folders themselves from the format's
// description (packed uint8 codes [n/2, 1] with the first element in the high nibble, absmax,
// quant_map, nested_absmax / nested_quant_map, the quant_state JSON blob, config.json's
// quantization_config), with their own quantizer and double quantizer in float64, and check
// that loralab loads them into 4-bit QuantLinears whose logits equal the float64 reference
// forward over the de-quantized weights; then that saveBnbModel writes that same layout.
import assert from "node:assert/strict";
import { ByteTokenizer, cpu, type GPT, Linear, quant, QuantLinear, Rng } from "../../lib/mod.ts";
import {
  loadHfWeights,
  loadModel,
  readSafetensors,
  type SafetensorsTensor,
  saveBnbModel,
  tensorFromArray,
  writeSafetensors,
} from "../../lib/io/mod.ts";
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
  type Weights,
  writeCheckpoint,
} from "./fixtures.ts";

const IDS = [3, 17, 200, 42, 1, 99, 271, 5, 64, 64, 128];
const f = Math.fround;

// Same tolerance as tests/hf/models.test.ts: f32 forwards vs float64 over tiny models.
const tol = (scale: number) => 1e-4 * (1 + scale);

interface BnbCase {
  type: "nf4" | "fp4";
  blockSize: number;
  dq: boolean;
  nestedBlock?: number;
  /** Store a perturbed nested map (the loader must use the file's map, not its own). */
  ownMap?: boolean;
}

/**
 * One weight W [O, I] (row-major, float64 numbers) in bitsandbytes' layout, quantized here from
 * the description: blocks of `blockSize` over the flat weight, absmax = max |w| (f32), code =
 * nearest table value to w / absmax (first on ties); with double quantization the absmax minus
 * their mean in nested blocks, each code the nearest map value (f32 distance, first on ties) to
 * r · f32(1 / max|r|).
 * Returns the stored tensors and the de-quantized W as bitsandbytes computes it.
 */
function bnbWeight(name: string, W: number[], O: number, I: number, c: BnbCase) {
  const table = Float32Array.from(c.type === "nf4" ? quant.NF4_VALUES : quant.FP4_VALUES);
  const n = O * I, nb = Math.ceil(n / c.blockSize);
  const absmax = new Float32Array(nb);
  const codes = new Uint8Array(n);
  for (let b = 0; b < nb; b++) {
    const blk = W.slice(b * c.blockSize, (b + 1) * c.blockSize);
    absmax[b] = Math.max(...blk.map(Math.abs));
    blk.forEach((w, j) => {
      let best = 0;
      for (let k = 1; k < 16; k++) {
        if (Math.abs(w / absmax[b] - table[k]) < Math.abs(w / absmax[b] - table[best])) best = k;
      }
      codes[b * c.blockSize + j] = best;
    });
  }
  const bytes = new Uint8Array(Math.ceil(n / 2));
  for (let i = 0; i < n; i++) bytes[i >> 1] |= i % 2 === 0 ? codes[i] << 4 : codes[i];
  const t = new Map<string, SafetensorsTensor>();
  t.set(name, tensorFromArray("U8", [bytes.length, 1], bytes));
  t.set(`${name}.quant_map`, tensorFromArray("F32", [16], table));
  const state: Record<string, unknown> = {
    quant_type: c.type,
    blocksize: c.blockSize,
    dtype: "float16",
    shape: [O, I],
  };
  let used = absmax; // the absmax bitsandbytes de-quantizes with
  if (!c.dq) {
    t.set(`${name}.absmax`, tensorFromArray("F32", [nb], absmax));
  } else {
    const nbs = c.nestedBlock ?? 256;
    const map = quant.dynamicMap();
    if (c.ownMap) { for (let j = 0; j < 256; j++) map[j] = f(map[j] * 0.999); }
    const off = f(absmax.reduce((s, v) => s + v, 0) / nb);
    const r = Array.from(absmax, (a) => f(a - off));
    const q = new Uint8Array(nb), nested = new Float32Array(Math.ceil(nb / nbs));
    used = new Float32Array(nb);
    for (let g = 0; g < nested.length; g++) {
      nested[g] = Math.max(...r.slice(g * nbs, (g + 1) * nbs).map(Math.abs));
      const inv = f(1 / nested[g]); // bitsandbytes multiplies by the f32 reciprocal
      for (let b = g * nbs; b < Math.min(nb, (g + 1) * nbs); b++) {
        const x = f(r[b] * inv), dist = (j: number) => f(Math.abs(f(x - map[j])));
        let best = 0;
        for (let j = 1; j < 256; j++) if (dist(j) < dist(best)) best = j;
        q[b] = best;
        used[b] = f(f(map[best] * nested[g]) + off);
      }
    }
    t.set(`${name}.absmax`, tensorFromArray("U8", [nb], q));
    t.set(`${name}.nested_absmax`, tensorFromArray("F32", [nested.length], nested));
    t.set(`${name}.nested_quant_map`, tensorFromArray("F32", [256], map));
    Object.assign(state, {
      nested_blocksize: nbs,
      nested_dtype: "float32",
      nested_offset: off,
    });
  }
  const json = new TextEncoder().encode(JSON.stringify(state));
  t.set(
    `${name}.quant_state.bitsandbytes__${c.type}`,
    tensorFromArray("U8", [json.length], json),
  );
  const deq = Array.from(codes, (code, i) => f(table[code] * used[Math.floor(i / c.blockSize)]));
  return { tensors: t, deq };
}

function bnbConfigJson(c: BnbCase) {
  return {
    quant_method: "bitsandbytes",
    load_in_4bit: true,
    load_in_8bit: false,
    bnb_4bit_quant_type: c.type,
    bnb_4bit_use_double_quant: c.dq,
    bnb_4bit_compute_dtype: "float16",
    bnb_4bit_quant_storage: "uint8",
  };
}

const isLinear = (n: string) =>
  /\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj|attn\.c_(attn|proj)|mlp\.c_(fc|proj))\.weight$/
    .test(n);

/**
 * Writes a bitsandbytes folder of `w` (Llama [out, in] or GPT-2 Conv1D [in, out] linears) and
 * returns the weights with each linear replaced by its de-quantized values (for the reference).
 */
async function writeBnb(
  dir: string,
  cfg: Record<string, unknown>,
  w: Weights,
  c: BnbCase,
  conv1d: boolean,
): Promise<Weights> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/config.json`,
    JSON.stringify({ ...cfg, quantization_config: bnbConfigJson(c) }),
  );
  const out = new Map<string, SafetensorsTensor>();
  const ref: Weights = new Map();
  for (const [name, t] of w) {
    if (!isLinear(name)) {
      out.set(name, tensorFromArray("F32", t.shape, Float32Array.from(t.data)));
      ref.set(name, t);
      continue;
    }
    const [r, k] = t.shape;
    const [O, I] = conv1d ? [k, r] : [r, k];
    const oi = conv1d
      ? Array.from({ length: O * I }, (_, j) => t.data[(j % I) * O + Math.floor(j / I)])
      : t.data;
    const { tensors, deq } = bnbWeight(name, oi, O, I, c);
    for (const [n, x] of tensors) out.set(n, x);
    const back = conv1d
      ? Array.from({ length: O * I }, (_, j) => deq[(j % O) * I + Math.floor(j / O)])
      : deq;
    ref.set(name, { shape: t.shape, data: back });
  }
  await writeSafetensors(`${dir}/model.safetensors`, out, { format: "pt" });
  return ref;
}

bothBackends(
  "bitsandbytes 4-bit checkpoints load as 4-bit QuantLinears; logits = de-quantize then float64",
  async (dev) => {
    const cases: [string, BnbCase][] = [
      ["llama", { type: "nf4", blockSize: 64, dq: true }],
      ["llama", { type: "fp4", blockSize: 128, dq: false }],
      ["llama", { type: "nf4", blockSize: 4096, dq: true, nestedBlock: 3, ownMap: true }],
      ["gpt2", { type: "nf4", blockSize: 32, dq: false }],
      ["gpt2", { type: "fp4", blockSize: 256, dq: true, nestedBlock: 2 }],
    ];
    for (const [arch, c] of cases) {
      const dir = await Deno.makeTempDir();
      const cfg = arch === "llama" ? llamaConfig() : gpt2Config();
      const w = arch === "llama" ? llamaWeights(cfg, 3, "F32") : gpt2Weights(cfg, 4, "F32");
      const ref = await writeBnb(dir, cfg, w, c, arch === "gpt2");
      const { model } = await loadHfWeights(dir, dev, { quantize: c.type });
      const lins = [...model.linears().values()];
      assert.ok(lins.length > 0);
      for (const l of lins) {
        assert.ok(l instanceof QuantLinear, "a 4-bit QuantLinear");
        assert.equal(l.weight.format, c.type);
        assert.equal(l.weight.layout.blockSize, c.blockSize);
        assert.equal(l.weight.layout.dqBlockSize, c.dq ? c.nestedBlock ?? 256 : 0);
      }
      const got = await logits(dev, model, IDS);
      const want = arch === "llama" ? llamaRef(cfg, ref, IDS) : gpt2Ref(cfg, ref, IDS);
      const { err, scale } = maxErr(got, want);
      const what = `${arch} ${c.type} b${c.blockSize}${c.dq ? " dq" : ""} ${dev.kind}`;
      console.log(`${what}: max |err| ${err.toExponential(2)}, max |logit| ${scale.toFixed(2)}`);
      assert.ok(err <= tol(scale), `${what}: err ${err}`);
      model.dispose();
      // quantize "none": the same weights de-quantized into f32 Linears, same logits.
      if (dev.kind === "cpu") {
        const f32 = (await loadHfWeights(dir, dev)).model;
        assert.ok([...f32.linears().values()].every((l) => l instanceof Linear));
        const e2 = maxErr(await logits(dev, f32, IDS), want).err;
        assert.ok(e2 <= tol(scale), `${what} as f32: err ${e2}`);
        f32.dispose();
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("bitsandbytes: an odd number of weights and a ragged last block decode exactly", async () => {
  const { bnbToBlockwise } = await import("../../lib/io/bnb.ts");
  const rng = new Rng(12);
  const W = Array.from({ length: 7 * 9 }, () => rng.normal());
  for (
    const c of [{ type: "nf4", blockSize: 32, dq: true, nestedBlock: 1 }, {
      type: "fp4",
      blockSize: 64,
      dq: false,
    }] as BnbCase[]
  ) {
    const { tensors, deq } = bnbWeight("x.weight", W, 7, 9, c);
    const q = bnbToBlockwise("x.weight", (n) => tensors.get(n), [7, 9]);
    assert.deepEqual([...q.dequantize()], deq);
  }
});

Deno.test("bitsandbytes: bad checkpoints give one clear error", async () => {
  const cfg = llamaConfig();
  const w = llamaWeights(cfg, 5, "F32");
  const c: BnbCase = { type: "nf4", blockSize: 64, dq: true };
  const bad = async (
    edit: (
      t: Map<string, SafetensorsTensor>,
      cfg: { quantization_config?: Record<string, unknown> },
    ) => void,
    re: RegExp,
  ) => {
    const dir = await Deno.makeTempDir();
    await writeBnb(dir, cfg, w, c, false);
    const t = (await readSafetensors(`${dir}/model.safetensors`)).tensors;
    const j = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    edit(t, j);
    await writeSafetensors(`${dir}/model.safetensors`, t);
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(j));
    await assert.rejects(() => loadHfWeights(dir, cpu, { quantize: "nf4" }), re);
    await Deno.remove(dir, { recursive: true });
  };
  const q = "model.layers.0.self_attn.q_proj.weight";
  await bad((t) => t.delete(`${q}.nested_absmax`), /q_proj\.weight\.nested_absmax is missing/);
  await bad((_, j) => {
    j.quantization_config!.load_in_4bit = false;
    j.quantization_config!.load_in_8bit = true;
  }, /only bitsandbytes 4-bit/);
  await bad((_, j) => delete j.quantization_config, /bitsandbytes tensor, but config.json has no/);
  await bad((t) => {
    const m = new Float32Array(16).fill(0.5);
    t.set(`${q}.quant_map`, tensorFromArray("F32", [16], m));
  }, /quant_map\[0\] = 0\.5, not bitsandbytes' nf4 value -1/);
  await bad((t) => {
    const k = `${q}.quant_state.bitsandbytes__nf4`;
    const s = JSON.parse(new TextDecoder().decode(t.get(k)!.data));
    s.shape = [16, 64];
    const b = new TextEncoder().encode(JSON.stringify(s));
    t.set(k, tensorFromArray("U8", [b.length], b));
  }, /quant_state shape \[16,64\], expected \[32, 32\]/);
});

bothBackends(
  "saveBnbModel writes bitsandbytes' layout; it loads back as the same 4-bit weights",
  async (dev) => {
    const src = await Deno.makeTempDir();
    const cfg = gpt2Config();
    await writeCheckpoint(src, cfg, gpt2Weights(cfg, 9, "F32"));
    const f32 = (await loadHfWeights(src, dev)).model as GPT;
    for (
      const c of [{ type: "nf4", blockSize: 64, dq: true }, {
        type: "fp4",
        blockSize: 32,
        dq: false,
      }] as BnbCase[]
    ) {
      const dir = await Deno.makeTempDir();
      await saveBnbModel(dir, f32, new ByteTokenizer(), {
        quantType: c.type,
        blockSize: c.blockSize,
        doubleQuant: c.dq,
      });
      // The file, read by the description: every linear as the test's own bitsandbytes writer
      // lays it out from the same f32 weights (same codes, absmax, nested state, JSON fields).
      const j = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
      assert.deepEqual(
        [
          j.quantization_config.bnb_4bit_quant_type,
          j.quantization_config.bnb_4bit_use_double_quant,
        ],
        [c.type, c.dq],
      );
      assert.equal(j.quantization_config.load_in_4bit, true);
      const file = (await readSafetensors(`${dir}/model.safetensors`)).tensors;
      for (const [path, lin] of f32.linears()) {
        const l = lin as Linear;
        const wt = Array.from((await l.weight.toArray()) as Float32Array); // Conv1D [in, out]
        const [I, O] = l.weight.shape;
        const oi = Array.from({ length: O * I }, (_, k) => wt[(k % I) * O + Math.floor(k / I)]);
        const { tensors } = bnbWeight(`${path}.weight`, oi, O, I, c);
        for (const [n, t] of tensors) {
          const got = file.get(n);
          assert.ok(got, `${n} written`);
          assert.equal(got.dtype, t.dtype, n);
          assert.deepEqual(got.shape, t.shape, n);
          if (n.includes("quant_state")) {
            const a = JSON.parse(new TextDecoder().decode(got.data));
            const b = JSON.parse(new TextDecoder().decode(t.data));
            assert.deepEqual({ ...a, dtype: b.dtype }, b, n); // ours says float32: the model's dtype
          } else assert.deepEqual(got.data, t.data, n);
        }
      }
      assert.equal(file.get("transformer.wte.weight")!.dtype, "F32");
      // Loaded back (loadModel routes a quantization_config folder through the HF loader): the
      // same 4-bit weights as quantizing the f32 model while loading, so the same logits.
      const back = (await loadModel(dir, dev, { quantize: c.type })).model;
      const direct = (await loadHfWeights(src, dev, {
        quantize: c.type,
        blockSize: c.blockSize,
        doubleQuant: c.dq,
      })).model;
      assert.deepEqual(await logits(dev, back, IDS), await logits(dev, direct, IDS));
      back.dispose();
      direct.dispose();
      await Deno.remove(dir, { recursive: true });
    }
    f32.dispose();
    await Deno.remove(src, { recursive: true });
  },
);
