import assert from "node:assert/strict";
import {
  AdamW,
  type Backend,
  clipGradNorm,
  clipGradNormOnDevice,
  cosineSchedule,
  crossEntropy,
  GradAccumulator,
  gradNorm,
  matmul,
  Rng,
  scope,
  SGD,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { assertClose, bothBackends, gpu, randData, randInt } from "../harness.ts";

// Reference: PyTorch's AdamW update in float64, written out.
function adamwRef(
  p: number[],
  grads: number[][],
  lr: number,
  b1: number,
  b2: number,
  eps: number,
  wd: number,
) {
  const m = p.map(() => 0), v = p.map(() => 0), q = [...p];
  grads.forEach((g, t) => {
    for (let i = 0; i < q.length; i++) {
      q[i] -= lr * wd * q[i];
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mh = m[i] / (1 - b1 ** (t + 1)), vh = v[i] / (1 - b2 ** (t + 1));
      q[i] -= lr * mh / (Math.sqrt(vh) + eps);
    }
  });
  return q;
}

bothBackends(
  "AdamW matches PyTorch's update rule in float64 (weights decay, biases don't)",
  async (dev) => {
    const rng = new Rng(71);
    const w0 = randData(rng, 12), b0 = randData(rng, 3);
    const gw = Array.from({ length: 5 }, () => randData(rng, 12));
    const gb = Array.from({ length: 5 }, () => randData(rng, 3));
    const w = Tensor.fromArray(w0, [4, 3], { device: dev }),
      b = Tensor.fromArray(b0, [3], { device: dev });
    const opt = new AdamW(new Map([["w", w], ["b", b]]), {
      lr: 0.01,
      betas: [0.9, 0.95],
      eps: 1e-8,
      weightDecay: 0.1,
    });
    for (let t = 0; t < 5; t++) {
      opt.update(
        new Map([[w, Tensor.fromArray(gw[t], [4, 3], { device: dev })], [
          b,
          Tensor.fromArray(gb[t], [3], { device: dev }),
        ]]),
      );
    }
    // f32 arithmetic over 5 steps: each step moves by ≤ lr; 1e-6 absolute is ~100 ulp of |w|~1.
    assertClose(await w.toArray(), adamwRef(w0, gw, 0.01, 0.9, 0.95, 1e-8, 0.1), 1e-6, "w");
    assertClose(await b.toArray(), adamwRef(b0, gb, 0.01, 0.9, 0.95, 1e-8, 0), 1e-6, "b");
    assert.equal(opt.stateBytes, 2 * (12 + 3) * 4);
    // state round trip
    const st = await opt.getState();
    const opt2 = new AdamW(new Map([["w", w], ["b", b]]));
    opt2.setState(st);
    assert.equal(opt2.step, 5);
    assert.throws(() => opt2.setState({ ...st, buffers: {} }), /missing or mis-sized state for w/);
  },
);

bothBackends("SGD with momentum matches the float64 rule", async (dev) => {
  const rng = new Rng(72);
  const p0 = randData(rng, 10), gs = Array.from({ length: 4 }, () => randData(rng, 10));
  const p = Tensor.fromArray(p0, [10], { device: dev });
  const opt = new SGD(new Map([["p", p]]), { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
  for (const g of gs) opt.update(new Map([[p, Tensor.fromArray(g, [10], { device: dev })]]));
  const q = [...p0], buf = q.map(() => 0);
  for (const g of gs) {
    for (let i = 0; i < 10; i++) {
      buf[i] = 0.9 * buf[i] + g[i] + 0.01 * q[i];
      q[i] -= 0.1 * buf[i];
    }
  }
  assertClose(await p.toArray(), q, 1e-6, "sgd");
});

bothBackends(
  "AdamW's moments match torch.optim.AdamW's (float64, β = 0.9, 0.999) to f32 rounding over 10 steps",
  async (dev) => {
    // torch.optim.AdamW: m ← β1·m + (1-β1)·g, v ← β2·v + (1-β2)·g², with 1-β computed from the
    // Python floats in double. Reference: the same recurrences in float64. Three tensors, so
    // WebGPU takes its multi-tensor kernel, and one alone (its single-tensor kernel).
    const rng = new Rng(5);
    const b1 = 0.9, b2 = 0.999, steps = 10;
    for (const sizes of [[37, 5, 64], [29]]) {
      const ps = sizes.map((n) => Tensor.fromArray(randData(rng, n), [n], { device: dev }));
      const gs = sizes.map((n) => Array.from({ length: steps }, () => randData(rng, n)));
      const opt = new AdamW(new Map(ps.map((p, i) => [`p${i}`, p])), { betas: [b1, b2] });
      for (let t = 0; t < steps; t++) {
        opt.update(
          new Map(ps.map((p, i) => [p, Tensor.fromArray(gs[i][t], [sizes[i]], { device: dev })])),
        );
      }
      const st = await opt.getState();
      sizes.forEach((n, i) => {
        for (let j = 0; j < n; j++) {
          let m = 0, v = 0, mAbs = 0;
          for (let t = 0; t < steps; t++) {
            const g = gs[i][t][j];
            m = b1 * m + (1 - b1) * g;
            mAbs = b1 * mAbs + (1 - b1) * Math.abs(g);
            v = b2 * v + (1 - b2) * g * g;
          }
          // f32: each step rounds ~5 times (u = 6e-8) and f32(β)^10 carries ≤ 10u: ≲ 15u = 9e-7
          // of the sum of |terms| (v's terms are all positive: relative). 1 - f32(0.999) instead of
          // 1 - 0.999 puts v 1.3e-5 off, so 2e-6 catches it.
          const { m: gm, v: gv } = st.buffers[`p${i}`];
          assert.ok(Math.abs(gm[j] - m) <= 2e-6 * mAbs, `m[${i}][${j}] ${gm[j]} vs ${m}`);
          assert.ok(Math.abs(gv[j] - v) <= 2e-6 * v, `v[${i}][${j}] ${gv[j]} vs ${v}`);
        }
      });
    }
  },
);

Deno.test("cosineSchedule: warm-up, cosine, floor", () => {
  const f = cosineSchedule({ maxLr: 1, minLr: 0.1, warmup: 10, total: 110 });
  assert.equal(f(0), 0.1);
  assert.equal(f(9), 1);
  assert.equal(f(10), 1);
  assert.ok(Math.abs(f(60) - 0.55) < 1e-12); // halfway: min + (max-min)/2
  assert.equal(f(110), 0.1);
  assert.equal(f(1000), 0.1);
  assert.throws(() => cosineSchedule({ maxLr: 0, total: 5 }), /maxLr and total must be > 0/);
});

bothBackends("clipGradNorm scales to the target norm; NaN is an error", async (dev) => {
  const a = Tensor.fromArray([3, 0], [2], { device: dev }),
    b = Tensor.fromArray([4], [1], { device: dev });
  const grads = new Map([[a, a], [b, b]]);
  assert.ok(Math.abs((await clipGradNorm(grads, 1)) - 5) < 1e-6);
  assert.ok(Math.abs((await gradNorm(grads)) - 1) < 1e-5);
  const bad = new Map([[a, Tensor.fromArray([NaN], [1], { device: dev })]]);
  await assert.rejects(() => clipGradNorm(bad, 1), /gradient norm is NaN/);
});

bothBackends(
  "clipGradNormOnDevice: norm and factor match float64; updates match host clipping",
  async (dev) => {
    const rng = new Rng(74);
    // Sizes below one workgroup, not multiples of 256, and past 32·256 (grid-stride loop).
    for (
      const [sizes, maxNorm] of [[[1, 7, 300], 0.5], [[9000, 257], 1e6], [[40000], 3]] as const
    ) {
      const data = sizes.map((n) => randData(rng, n));
      let ss = 0;
      for (const d of data) for (const v of d) ss += v * v;
      const norm = Math.sqrt(ss), factor = Math.min(1, maxNorm / (norm + 1e-6));
      const grads = new Map(data.map((d) => {
        const g = Tensor.fromArray(d, [d.length], { device: dev });
        return [Tensor.fromArray(randData(rng, d.length), [d.length], { device: dev }), g];
      }));
      const clip = clipGradNormOnDevice(grads, maxNorm);
      const [gotNorm, gotFactor] = await clip.toArray();
      // f32 sums of ≤ 40,000 squares: relative error ≲ 1e-4 with tree/strided summation (n·u bound
      // is loose; we allow 1e-5 relative, well above the ~√n·u typical error).
      assert.ok(Math.abs(gotNorm - norm) <= 1e-5 * norm, `norm ${gotNorm} vs ${norm}`);
      assert.ok(Math.abs(gotFactor - factor) <= 1e-5 * factor, `factor ${gotFactor} vs ${factor}`);
      // The clipped AdamW update equals AdamW on explicitly scaled gradients.
      const params = [...grads.keys()];
      const copies = await Promise.all(
        params.map(async (p) => Tensor.fromArray(await p.toArray(), p.shape, { device: dev })),
      );
      const a = new AdamW(new Map(params.map((p, i) => [`p${i}`, p])), { lr: 0.1 });
      a.update(grads, 0.1, clip);
      const b = new AdamW(new Map(copies.map((p, i) => [`p${i}`, p])), { lr: 0.1 });
      const scaled = new Map<Tensor, Tensor>();
      let i = 0;
      for (const g of grads.values()) {
        const host = await g.toArray();
        scaled.set(
          copies[i++],
          Tensor.fromArray(host.map((v) => Math.fround(v * gotFactor)), g.shape, { device: dev }),
        );
      }
      b.update(scaled, 0.1);
      for (let k = 0; k < params.length; k++) {
        // Same f32 operations in the same order on the same values: equal to the last bit.
        assert.deepEqual(await params[k].toArray(), await copies[k].toArray(), `param ${k}`);
      }
    }
    assert.throws(() => clipGradNormOnDevice(new Map(), 1), /no gradients/);
    assert.throws(() => clipGradNormOnDevice(new Map(), 0), /must be > 0/);
  },
);

Deno.test({
  name: "AdamW on WebGPU: the multi-tensor kernel equals one dispatch per tensor, bit for bit",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dev = await gpu();
    const rng = new Rng(75);
    // 17 tensors (more than one dispatch holds), 1-D ones without weight decay, sizes not
    // multiples of 256; three steps with clipping by a device-side factor.
    const shapes = Array.from(
      { length: 17 },
      (_, i) => i % 3 === 0 ? [randInt(rng, 1, 300)] : [randInt(rng, 1, 40), randInt(rng, 1, 40)],
    );
    const data = shapes.map((s) => randData(rng, s.reduce((a, b) => a * b, 1)));
    const mk = () => data.map((d, i) => Tensor.fromArray(d, shapes[i], { device: dev }));
    const many = mk(), single = mk();
    const optMany = new AdamW(new Map(many.map((p, i) => [`p${i}`, p])), { lr: 0.05 });
    const optOne = single.map((p, i) => new AdamW(new Map([[`p${i}`, p]]), { lr: 0.05 }));
    for (let step = 0; step < 3; step++) {
      const gs = data.map((d, i) => randData(rng, d.length).map((x) => x * (i + 1)));
      const gMany = new Map(
        many.map((p, i) => [p, Tensor.fromArray(gs[i], shapes[i], { device: dev })]),
      );
      const gOne = new Map(
        single.map((p, i) => [p, Tensor.fromArray(gs[i], shapes[i], { device: dev })]),
      );
      const clip = clipGradNormOnDevice(gMany, 3);
      optMany.update(gMany, 0.05, clip);
      optOne.forEach((o, i) => o.update(new Map([[single[i], gOne.get(single[i])!]]), 0.05, clip));
    }
    for (let i = 0; i < many.length; i++) {
      assert.deepEqual(await many[i].toArray(), await single[i].toArray(), `tensor ${i}`);
    }
  },
});

/**
 * A softmax regression on random data: weights w [5, 7] and `gradOf(lo, hi)`, the gradient of
 * the mean cross-entropy over rows lo..hi of N random rows (the accumulation tests' problem).
 */
function softmaxRegression(dev: Backend, seed: number, N: number) {
  const rng = new Rng(seed);
  const [C, V] = [5, 7];
  const x = randData(rng, N * C), w0 = randData(rng, C * V);
  const tg = Array.from({ length: N }, () => rng.int(V));
  const w = Tensor.fromArray(w0, [C, V], { device: dev });
  const gradOf = (lo: number, hi: number) => {
    const tape = new Tape();
    tape.watch(w);
    const xs = Tensor.fromArray(x.slice(lo * C, hi * C), [hi - lo, C], { device: dev });
    const ts = Tensor.fromArray(tg.slice(lo, hi), [hi - lo], { device: dev, dtype: "i32" });
    const loss = tape.run(() => crossEntropy(matmul(xs, w), ts));
    return tape.backward(loss);
  };
  return { w, gradOf };
}

bothBackends("gradient accumulation over two half-batches equals the full batch", async (dev) => {
  const N = 8;
  const { w, gradOf } = softmaxRegression(dev, 73, N);
  const full = await gradOf(0, N).get(w)!.toArray();
  const acc = new GradAccumulator();
  acc.add(gradOf(0, N / 2));
  acc.add(gradOf(N / 2, N));
  assert.equal(acc.size, 2);
  assertClose(await acc.take().get(w)!.toArray(), full, 1e-6, "accumulated");
});

bothBackends(
  "gradient accumulation: each micro-batch in its own scope, as the trainer runs",
  async (dev) => {
    // The trainer runs each micro-batch in a scope and keeps only the gradients it hands over;
    // the running sums made in the second and later micro-batches must outlive those scopes.
    const [N, K] = [9, 3];
    const { w, gradOf } = softmaxRegression(dev, 74, N);
    const full = await gradOf(0, N).get(w)!.toArray();
    const acc = new GradAccumulator();
    for (let k = 0; k < K; k++) {
      scope(() => {
        const g = gradOf((k * N) / K, ((k + 1) * N) / K);
        for (const t of g.values()) t.keep();
        acc.add(g);
      });
    }
    const mean = await scope(async () => await acc.take().get(w)!.toArray());
    // Mean of K equal-sized batch means = the full-batch mean; f32 sums of 3 terms.
    assertClose(mean, full, 1e-6, "accumulated in scopes");
  },
);

bothBackends(
  "AdamW and SGD on a parameter in row chunks: the whole tensor's updates; state read and restored whole",
  async (dev) => {
    const rng = new Rng(91);
    const rows = [7, 7, 7, 2], C = 4, V = 23;
    const p0 = randData(rng, V * C);
    const grads = Array.from({ length: 4 }, () => randData(rng, V * C));
    const whole = () => Tensor.fromArray(p0, [V, C], { device: dev });
    const split = () => {
      let r = 0;
      return Tensor.fromChunks(rows.map((n) => {
        const c = Tensor.fromArray(p0.slice(r * C, (r + n) * C), [n, C], { device: dev });
        r += n;
        return c;
      }));
    };
    // Gradients as a tape gives them: one per chunk, keyed by the chunk tensor.
    const gradMap = (p: Tensor, g: number[]) => {
      const m = new Map<Tensor, Tensor>();
      let o = 0;
      for (const c of p.chunks ?? [p]) {
        m.set(c, Tensor.fromArray(g.slice(o, o + c.size), c.shape, { device: dev }));
        o += c.size;
      }
      return m;
    };
    // Weight decay by name: "emb" decays, whatever the tensors the update runs on.
    const decay = (n: string) => n === "emb";
    const run = async (p: Tensor, kind: "adamw" | "sgd") => {
      const make = () =>
        kind === "adamw"
          ? new AdamW(new Map([["emb", p]]), { lr: 0.01, weightDecay: 0.1, decay })
          : new SGD(new Map([["emb", p]]), { lr: 0.01, momentum: 0.9, weightDecay: 0.1 });
      const opt = make();
      for (const g of grads.slice(0, 3)) opt.update(gradMap(p, g));
      const state = await opt.getState();
      // A fresh optimizer restored from the state takes the fourth step.
      const again = make();
      again.setState(state);
      again.update(gradMap(p, grads[3]));
      return { state, p: await p.toArray() };
    };
    for (const kind of ["adamw", "sgd"] as const) {
      const a = await run(whole(), kind), b = await run(split(), kind);
      // The update kernels are elementwise: each entry's arithmetic is the same, bit for bit.
      assert.deepEqual(b.p, a.p, `${kind}: parameters`);
      assert.deepEqual(b.state, a.state, `${kind}: state (whole buffers under the name)`);
    }
  },
);
