import assert from "node:assert/strict";
import {
  type Backend,
  cpu,
  Linear,
  LoraLinear,
  mul,
  quant,
  QuantLinear,
  Rng,
  sum,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { assertClose, bothBackends, randData, U32 } from "../harness.ts";
import { matmulRef } from "../ref.ts";

/** A LoRA layer with non-zero B (so the update matters) on an f32 [in, out] base. */
function setup(dev: Backend, I: number, O: number, r: number, seed: number) {
  const rng = new Rng(seed);
  const w = randData(rng, I * O, 0.5), b = randData(rng, O);
  const base = new Linear(
    Tensor.fromArray(w, [I, O], { device: dev }),
    Tensor.fromArray(b, [O], { device: dev }),
  );
  const l = new LoraLinear(base, { r, alpha: 2 * r, seed, dropout: 0 });
  const bB = randData(rng, O * r, 0.3);
  l.loraB.dispose();
  l.loraB = Tensor.fromArray(bB, [O, r], { device: dev });
  return { l, w, b, bB, rng };
}

bothBackends(
  "LoRA forward and backward equal a plain layer with W + s·(B·A)ᵀ (float64)",
  async (dev) => {
    const [I, O, r, N] = [13, 9, 3, 7];
    const { l, w, b, bB, rng } = setup(dev, I, O, r, 1);
    const a = Array.from(await l.loraA.toArray());
    // Kaiming-uniform(a=√5): |A| ≤ 1/√in
    assert.ok(a.every((v) => Math.abs(v) <= 1 / Math.sqrt(I)));
    const x = randData(rng, N * I), gy = randData(rng, N * O);
    const s = l.scaling;
    assert.equal(s, 2);
    // merged weight in float64: W'[i, o] = W[i, o] + s · Σ_k A[k, i] B[o, k]
    const wm = w.map((v, idx) => {
      const i = Math.floor(idx / O), o = idx % O;
      let d = 0;
      for (let k = 0; k < r; k++) d += a[k * I + i] * bB[o * r + k];
      return v + s * d;
    });
    const ref = matmulRef(x, wm, b, 1, N, O, I, false, false, 0, 0);
    const xt = Tensor.fromArray(x, [N, I], { device: dev });
    const tape = new Tape();
    tape.watch(xt, l.loraA, l.loraB);
    const y = tape.run(() => l.forward(xt));
    assertClose(
      await y.toArray(),
      ref.out,
      ref.absDot.map((v) => 4 * (I + r) * U32 * v + 1e-6),
      "forward",
    );
    const gt = Tensor.fromArray(gy, [N, O], { device: dev });
    const loss = tape.run(() => sum(mul(y, gt).reshape([N * O]), 0));
    const g = tape.backward(loss);
    // dx = gy · W'ᵀ ; dA[k, i] = s Σ_n (gy B)[n, k] x[n, i] ; dB[o, k] = s Σ_n gy[n, o] (x Aᵀ)[n, k]
    const dx = matmulRef(gy, wm, null, 1, N, I, O, false, true, 0, 0).out;
    const gB = matmulRef(gy, bB, null, 1, N, r, O, false, false, 0, 0).out; // [N, r]
    const xA = matmulRef(x, a, null, 1, N, r, I, false, true, 0, 0).out; // [N, r]
    const dA = matmulRef(gB, x, null, 1, r, I, N, true, false, 0, 0).out.map((v) => s * v);
    const dB = matmulRef(gy, xA, null, 1, O, r, N, true, false, 0, 0).out.map((v) => s * v);
    assertClose(await g.get(xt)!.toArray(), dx, 1e-5, "dx");
    assertClose(await g.get(l.loraA)!.toArray(), dA, 1e-5, "dA");
    assertClose(await g.get(l.loraB)!.toArray(), dB, 1e-5, "dB");
    assert.ok(!g.has((l.base as Linear).weight), "the frozen weight has no gradient");
  },
);

bothBackends(
  "QLoRA layer equals LoRA on the de-quantized NF4 weight; dx flows through it",
  async (dev) => {
    const [I, O, r, N] = [70, 33, 4, 6];
    const { l } = setup(dev, I, O, r, 2);
    const q = await QuantLinear.fromLinear(l.base as Linear, {
      format: "nf4",
      blockSize: 64,
      doubleQuant: true,
    });
    // Reference: an f32 Linear holding exactly dequant(W) (transposed back to [in, out]).
    const deq = Array.from(await quant.dequantizeOnDevice(q.weight).toArray()); // [out, in]
    const wt = new Float32Array(I * O);
    for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) wt[i * O + o] = deq[o * I + i];
    const ref = new LoraLinear(
      new Linear(Tensor.fromArray(wt, [I, O], { device: dev }), l.base.parameters().get("bias")!),
      { r, alpha: 2 * r, seed: 2, dropout: 0 },
    );
    ref.loraB = l.loraB;
    const ql = new LoraLinear(q, { r, alpha: 2 * r, seed: 2, dropout: 0 });
    ql.loraB = l.loraB;
    const x = Tensor.randn([N, I], { device: dev, seed: 3 });
    const run = (layer: LoraLinear) => {
      const tape = new Tape();
      tape.watch(x, layer.loraA);
      const loss = tape.run(() => sum(layer.forward(x).reshape([N * O]), 0));
      return { loss, g: tape.backward(loss) };
    };
    const a = run(ql), b = run(ref);
    // same math, different kernels: f32 sums of ≤ 70 terms of O(1): 1e-4 absolute.
    assertClose([await a.loss.item()], [await b.loss.item()], 1e-3, "loss");
    assertClose(await a.g.get(x)!.toArray(), await b.g.get(x)!.toArray(), 1e-4, "dx");
    assertClose(
      await a.g.get(ql.loraA)!.toArray(),
      await b.g.get(ref.loraA)!.toArray(),
      1e-4,
      "dA",
    );
    // 4.127 bits per weight would need a larger matrix; here just check it is far below 32.
    assert.ok(q.weight.bitsPerParameter < 6);
  },
);

bothBackends(
  "merge/unmerge: f32 merged forward equals the adapter forward; NF4 refused",
  async (dev) => {
    const [I, O, r] = [11, 7, 2];
    const { l } = setup(dev, I, O, r, 4);
    const x = Tensor.randn([5, I], { device: dev, seed: 5 });
    const y0 = await l.forward(x).toArray();
    const w0 = await (l.base as Linear).weight.toArray();
    await l.merge();
    assert.ok(l.merged);
    assertClose(await l.forward(x).toArray(), y0, 1e-5, "merged forward");
    await l.unmerge();
    assertClose(await (l.base as Linear).weight.toArray(), w0, 1e-6, "unmerged weight");
    assertClose(await l.forward(x).toArray(), y0, 1e-5, "unmerged forward");
    // f16 base: merged = re-rounded to f16, error ≤ half an f16 ulp per weight
    const { l: l16 } = setup(dev, I, O, r, 6);
    const q16 = await QuantLinear.fromLinear(l16.base as Linear, { format: "f16" });
    const m16 = new LoraLinear(q16, { r, alpha: 2 * r, seed: 6, dropout: 0 });
    m16.loraB = l16.loraB;
    const y16 = await m16.forward(x).toArray();
    await m16.merge();
    assertClose(await m16.forward(x).toArray(), y16, 1e-2, "f16 merged forward (f16 rounding)");
    const qn = await QuantLinear.fromLinear(l.base as Linear, { format: "nf4" });
    const ln = new LoraLinear(qn, { r, alpha: 2 * r, seed: 1 });
    await assert.rejects(() => ln.merge(), /base weight is nf4; merging would re-quantize/);
  },
);

Deno.test("LoRA counts: a 4096×4096 linear with r=8 has 65,536 trainable of 16,777,216 frozen", () => {
  const base = new Linear(Tensor.zeros([4096, 4096], { device: cpu }), null);
  const l = new LoraLinear(base, { r: 8, alpha: 16, seed: 0 });
  const p = l.parameters();
  const trainable = p.get("lora_A.weight")!.size + p.get("lora_B.weight")!.size;
  assert.equal(trainable, 65_536);
  assert.equal(p.get("base_layer.weight")!.size, 16_777_216);
  assert.deepEqual(p.get("lora_A.weight")!.shape, [8, 4096]);
  assert.deepEqual(p.get("lora_B.weight")!.shape, [4096, 8]);
  assert.throws(() => new LoraLinear(base, { r: 0, alpha: 16, seed: 0 }), /rank 0/);
  assert.equal(new LoraLinear(base, { r: 16, alpha: 16, seed: 0, rslora: true }).scaling, 4);
});
