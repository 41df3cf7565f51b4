// The WGSL backward and optimizer kernels against their CPU twins on random shapes (sizes that
// are not multiples of the 256-thread workgroup, and 1). Same float32 formulas in the same
// summation order; differences come from GPU exp/sqrt/division (a few ULP), so 1e-5 relative +
// 1e-6 absolute.
import assert from "node:assert/strict";
import {
  type Backend,
  cpu,
  gelu,
  mul,
  Rng,
  type Storage,
  sum,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { assertClose, gpu, randData, randInt } from "../harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const tol = (w: ArrayLike<number>) => Array.from(w, (x) => 1e-6 + 1e-5 * Math.abs(x));

function up(dev: Backend, xs: number[]): Storage {
  return dev.upload("f32", Float32Array.from(xs));
}
function upI(dev: Backend, xs: number[]): Storage {
  return dev.upload("i32", Int32Array.from(xs));
}
async function both(
  f: (dev: Backend) => Storage[],
  sizes: number[],
  what: string,
): Promise<void> {
  const g = await gpu();
  const want = f(cpu), got = f(g);
  for (let i = 0; i < want.length; i++) {
    const w = await cpu.read(want[i], "f32", sizes[i]);
    assertClose(await g.read(got[i], "f32", sizes[i]), w, tol(w), `${what} output ${i}`);
  }
}

Deno.test("twins: layerNormBackward", opts, async () => {
  const rng = new Rng(61);
  for (let t = 0; t < 4; t++) {
    const rows = randInt(rng, 1, 40), cols = randInt(rng, 1, 300);
    const x = randData(rng, rows * cols), gm = randData(rng, cols), dy = randData(rng, rows * cols);
    await both(
      (d) => {
        const r = d.layerNormBackward(up(d, x), up(d, gm), up(d, dy), rows, cols, 1e-5);
        return [r.dx, r.dgamma!, r.dbeta!];
      },
      [rows * cols, cols, cols],
      `layerNormBackward ${rows}x${cols}`,
    );
    // Frozen γ, β: the same dx, no parameter gradients.
    await both(
      (d) => {
        const r = d.layerNormBackward(up(d, x), up(d, gm), up(d, dy), rows, cols, 1e-5, false);
        assert.equal(r.dgamma, null);
        assert.equal(r.dbeta, null);
        return [r.dx];
      },
      [rows * cols],
      `layerNormBackward ${rows}x${cols} (frozen params)`,
    );
  }
});

Deno.test("twins: embeddingBackward, crossEntropyBackward, unnarrow", opts, async () => {
  const rng = new Rng(62);
  for (let t = 0; t < 4; t++) {
    const n = randInt(rng, 1, 70), V = randInt(rng, 1, 300), C = randInt(rng, 1, 20);
    const ids = Array.from({ length: n }, () => rng.int(V));
    const dy = randData(rng, n * C);
    await both((d) => [d.embeddingBackward(upI(d, ids), up(d, dy), n, V, C)], [V * C], "embBwd");
    const logits = randData(rng, n * V, 3), g = randData(rng, n);
    await both(
      (d) => [d.crossEntropyBackward(up(d, logits), upI(d, ids), up(d, g), n, V)],
      [n * V],
      "ceBwd",
    );
    // Masked: random rows with target -100 (forward 0, backward zeros) on both twins.
    const masked = ids.map((k) => rng.uniform() < 0.4 ? -100 : k);
    await both(
      (d) => [
        d.crossEntropy(up(d, logits), upI(d, masked), n, V, true),
        d.crossEntropyBackward(up(d, logits), upI(d, masked), up(d, g), n, V, true),
      ],
      [n, n * V],
      `ce masked ${n}x${V}`,
    );
    const [outer, len, inner] = [randInt(rng, 1, 5), randInt(rng, 1, 7), randInt(rng, 1, 9)];
    const full = len + randInt(rng, 0, 5), start = rng.int(full - len + 1);
    const a = randData(rng, outer * len * inner);
    await both(
      (d) => [d.unnarrow(up(d, a), outer, len, inner, full, start)],
      [outer * full * inner],
      "unnarrow",
    );
  }
});

Deno.test(
  "embeddingBackward: the GPU's counting sort sums in position order, bit for bit",
  opts,
  async () => {
    const g = await gpu();
    const rng = new Rng(63);
    // Few ids, many positions: long buckets whose sums depend on the order of addition.
    for (const [n, V, C] of [[1000, 13, 5], [3, 300, 2], [700, 1, 3]]) {
      const ids = Array.from({ length: n }, () => rng.int(V));
      const dy = randData(rng, n * C);
      const [cpuOut, gpuOut] = await Promise.all(
        [cpu, g].map((d) =>
          d.read(d.embeddingBackward(upI(d, ids), up(d, dy), n, V, C), "f32", V * C)
        ),
      );
      assert.deepEqual(gpuOut, cpuOut, `n${n} V${V} C${C}`);
    }
  },
);

Deno.test(
  "embeddingBackward of a row chunk: CPU twin against float64, WebGPU bit for bit",
  opts,
  async () => {
    const g = await gpu();
    const rng = new Rng(64);
    // Chunks of a table of `total` rows at odd starts; sizes that are not multiples of the
    // 256-thread workgroup; ids over the whole table (most outside the chunk).
    for (
      const [n, total, start, V, C] of [[300, 23, 7, 7, 5], [70, 601, 259, 300, 3], [5, 9, 8, 1, 2]]
    ) {
      const ids = Array.from({ length: n }, () => rng.int(total));
      const dy = randData(rng, n * C);
      const rows = { start, total };
      const [cpuOut, gpuOut] = await Promise.all(
        [cpu, g].map((d) =>
          d.read(d.embeddingBackward(upI(d, ids), up(d, dy), n, V, C, rows), "f32", V * C)
        ),
      );
      const ref = new Array<number>(V * C).fill(0), abs = new Array<number>(V * C).fill(0);
      ids.forEach((id, i) => {
        if (id < start || id >= start + V) return;
        for (let c = 0; c < C; c++) {
          ref[(id - start) * C + c] += dy[i * C + c];
          abs[(id - start) * C + c] += Math.abs(dy[i * C + c]);
        }
      });
      // A sum of k f32 terms: |error| ≤ k·u·Σ|terms|, k ≤ n.
      assertClose(cpuOut, ref, abs.map((s) => n * 2 ** -24 * s), `n${n} ${start}+${V}/${total}`);
      assert.deepEqual(gpuOut, cpuOut, `n${n} ${start}+${V}/${total}: the same order`);
    }
    assert.throws(
      () => cpu.embeddingBackward(upI(cpu, [9]), up(cpu, [1]), 1, 1, 1, { start: 8, total: 9 }),
      /id 9 at 0 is outside \[0, 9\)/,
    );
  },
);

Deno.test("twins: geluGrad, step, silu and siluGrad", opts, async () => {
  const rng = new Rng(63);
  const x = randData(rng, 777, 4);
  for (const op of ["geluGrad", "step", "silu", "siluGrad"] as const) {
    await both((d) => [d.unary(op, up(d, x), x.length, 0)], [x.length], op);
  }
});

Deno.test("twins: AdamW and SGD steps update in place identically (10 steps)", opts, async () => {
  const rng = new Rng(64);
  const n = 1000;
  const p0 = randData(rng, n), grads = Array.from({ length: 10 }, () => randData(rng, n));
  await both(
    (d) => {
      const p = up(d, p0), m = d.zeros("f32", n), v = d.zeros("f32", n);
      grads.forEach((gr, t) => {
        const g = up(d, gr);
        d.adamw(p, g, m, v, n, {
          lr: 1e-2,
          beta1: 0.9,
          beta2: 0.95,
          oneMinusBeta1: 1 - 0.9,
          oneMinusBeta2: 1 - 0.95,
          eps: 1e-8,
          weightDecay: 0.1,
          biasCorrection1: 1 - 0.9 ** (t + 1),
          biasCorrection2: 1 - 0.95 ** (t + 1),
        });
      });
      return [p, m, v];
    },
    [n, n, n],
    "adamw",
  );
  await both(
    (d) => {
      const p = up(d, p0), buf = d.zeros("f32", n);
      for (const gr of grads) d.sgd(p, up(d, gr), buf, n, 0.05, 0.9, 0.01);
      return [p, buf];
    },
    [n, n],
    "sgd",
  );
});

Deno.test("twins: accumulate (dst += src in place) is bit-identical to add", opts, async () => {
  const rng = new Rng(67);
  const g = await gpu();
  for (const n of [1, 255, 257, 1000 + randInt(rng, 0, 999)]) {
    const a = randData(rng, n), b = randData(rng, n);
    const want = Float32Array.from(a, (x, i) => Math.fround(x + b[i])); // f32 sums, exact rounding
    for (const d of [cpu, g]) {
      const dst = up(d, a);
      d.accumulate!(dst, up(d, b), n);
      const got = await d.read(dst, "f32", n);
      assert.deepEqual(got, want, `${d.kind} accumulate n=${n}`);
    }
  }
});

Deno.test(
  "twins: geluBackward (WGSL) vs the CPU; the CPU's equals mul(g, geluGrad) bit for bit",
  opts,
  async () => {
    const rng = new Rng(71);
    for (const n of [1, 257, 999]) {
      // std 1 as for the unary twins: past |x| ≈ 3 the GPU's f32 tanh makes 1 + t cancel
      // (absolute error ≈ 1e-6 on derivatives of ≈ 1e-5), which the CPU's float64 tanh does not.
      const x = randData(rng, n), g = randData(rng, n);
      x[0] = 0;
      await both((d) => [d.geluBackward(up(d, x), up(d, g), n)], [n], `geluBackward n=${n}`);
      // The CPU pass is the composed ops' f32 values exactly (pretraining's numerics).
      const fused = await cpu.read(cpu.geluBackward(up(cpu, x), up(cpu, g), n), "f32", n);
      const gg = cpu.unary("geluGrad", up(cpu, x), n, 0);
      const composed = await cpu.read(cpu.binary("mul", up(cpu, g), gg, [n], [1], [1]), "f32", n);
      assert.deepEqual(fused, composed);
    }
  },
);

Deno.test("softmaxBackward (CPU) equals the composed mul, sum, sub, mul bit for bit", async () => {
  const rng = new Rng(73);
  for (const [rows, cols, causal] of [[5, 7, false], [24, 8, true], [3, 130, false]] as const) {
    const x = randData(rng, rows * cols, 4), g = randData(rng, rows * cols);
    const y = cpu.softmax(up(cpu, x), rows, cols, false, causal);
    const fused = await cpu.read(
      cpu.softmaxBackward!(y, up(cpu, g), rows, cols),
      "f32",
      rows * cols,
    );
    // The composed ops as the op layer wrote them: y · (g − Σ_row g·y).
    const gy = cpu.binary("mul", up(cpu, g), y, [rows * cols], [1], [1]);
    const s = cpu.reduce("sum", gy, rows, cols, 1);
    const d = cpu.binary("sub", up(cpu, g), s, [rows, cols], [cols, 1], [1, 0]);
    const composed = await cpu.read(
      cpu.binary("mul", y, d, [rows * cols], [1], [1]),
      "f32",
      rows * cols,
    );
    assert.deepEqual(fused, composed, `${rows}x${cols}${causal ? " causal" : ""}`);
  }
});

Deno.test("gelu under a tape on the CPU (one tanh per element) matches the plain op bit for bit", async () => {
  const rng = new Rng(79);
  const n = 1001;
  const xs = randData(rng, n, 3), gs = randData(rng, n);
  const x = Tensor.fromArray(xs, [n], { device: cpu });
  const g = Tensor.fromArray(gs, [n], { device: cpu });
  const tape = new Tape();
  tape.watch(x);
  let y: Tensor | null = null;
  const loss = tape.run(() => {
    y = gelu(x);
    return sum(mul(y, g), 0);
  });
  const dx = await tape.backward(loss).get(x)!.toArray();
  const plain = await gelu(x).toArray(); // no tape: the unary kernel
  assert.deepEqual(await y!.toArray(), plain);
  const d = cpu.unary("geluGrad", x.storage, n, 0);
  const want = await cpu.read(cpu.binary("mul", g.storage, d, [n], [1], [1]), "f32", n);
  assert.deepEqual(dx, want);
});
