// Gradient checks: every op's backward (on each backend) against central finite differences of
// an independent float64 forward (tests/ref.ts-style loops), for the scalar loss
// L = Σ w ⊙ f(inputs) with random w. The float64 differences are accurate to ~1e-9, so the
// tolerance is set by the float32 backward: 1e-4 · (1 + max|∇|) absolute per element.
import assert from "node:assert/strict";
import {
  add,
  addMatmulInPlace,
  type Backend,
  broadcastTo,
  causalSelfAttention,
  causalSelfAttentionQkv,
  concat,
  crossEntropy,
  div,
  embedding,
  exp,
  gelu,
  layerNorm,
  log,
  logSoftmax,
  matmul,
  mean,
  mul,
  narrow,
  neg,
  permute,
  relu,
  Rng,
  scale,
  silu,
  softmax,
  sqrt,
  sub,
  sum,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { assertClose, bothBackends, randData } from "../harness.ts";
import {
  broadcastRef,
  geluRef,
  layerNormRef,
  matmulRef,
  ravel,
  softmaxRef,
  unravel,
} from "../ref.ts";

interface Check {
  shapes: number[][];
  /** Values for the inputs (default: N(0,1)). */
  init?: (rng: Rng, k: number, n: number) => number[];
  /** The op on tensors (extra non-differentiable inputs are made inside). */
  op: (dev: Backend, xs: Tensor[]) => Tensor;
  /** The same op in float64. */
  ref: (xs: number[][]) => number[];
}

async function gradcheck(dev: Backend, name: string, c: Check, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const xs = c.shapes.map((s, k) => {
    const n = s.reduce((a, b) => a * b, 1);
    return c.init ? c.init(rng, k, n).map(Math.fround) : randData(rng, n);
  });
  const outLen = c.ref(xs).length;
  const w = randData(rng, outLen);
  const L = (v: number[][]) => c.ref(v).reduce((s, y, i) => s + w[i] * y, 0);
  // float64 central differences
  const h = 1e-5;
  const fd = xs.map((x, k) =>
    x.map((_, j) => {
      const p = xs.map((v) => [...v]), m = xs.map((v) => [...v]);
      p[k][j] += h;
      m[k][j] -= h;
      return (L(p) - L(m)) / (2 * h);
    })
  );
  // analytic, on the backend
  const ts = xs.map((x, k) => Tensor.fromArray(x, c.shapes[k], { device: dev }));
  const tape = new Tape();
  tape.watch(...ts);
  const wt = Tensor.fromArray(w, [outLen], { device: dev });
  const loss = tape.run(() => sum(mul(c.op(dev, ts).reshape([outLen]), wt), 0));
  const grads = tape.backward(loss);
  for (let k = 0; k < ts.length; k++) {
    const g = grads.get(ts[k]);
    assert.ok(g, `${name}: no gradient for input ${k}`);
    const got = await g.toArray();
    const scaleMax = Math.max(...fd[k].map(Math.abs));
    assertClose(got, fd[k], 1e-4 * (1 + scaleMax), `${name} d/dx${k}`);
  }
}

function check(name: string, c: Check): void {
  bothBackends(`gradcheck: ${name}`, async (dev) => {
    for (const seed of [1, 2]) await gradcheck(dev, name, c, seed);
  });
}

const bin = (f: (x: number, y: number) => number, as: number[], bs: number[]) => (xs: number[][]) =>
  broadcastRef(f, xs[0], as, xs[1], bs).out;

// ---- matmul, every transposition, batched and shared operands, bias ----
for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
  const [M, N, K] = [3, 5, 4];
  check(`matmul tA=${tA} tB=${tB} + bias`, {
    shapes: [tA ? [K, M] : [M, K], tB ? [N, K] : [K, N], [N]],
    op: (_d, [a, b, bias]) => matmul(a, b, { transA: tA, transB: tB, bias }),
    ref: ([a, b, bias]) => matmulRef(a, b, bias, 1, M, N, K, tA, tB, 0, 0).out,
  });
}
check("matmul batched a × shared b (flattened path)", {
  shapes: [[2, 3, 4], [5, 4]],
  op: (_d, [a, b]) => matmul(a, b, { transB: true }),
  ref: ([a, b]) => matmulRef(a, b, null, 2, 3, 5, 4, false, true, 12, 0).out,
});
check("matmul shared a × batched b", {
  shapes: [[4, 3], [2, 4, 5]],
  op: (_d, [a, b]) => matmul(a, b, { transA: true }),
  ref: ([a, b]) => matmulRef(a, b, null, 2, 3, 5, 4, true, false, 0, 20).out,
});
check("matmul batched transA × shared b", {
  shapes: [[2, 4, 3], [4, 5]],
  op: (_d, [a, b]) => matmul(a, b, { transA: true }),
  ref: ([a, b]) => matmulRef(a, b, null, 2, 3, 5, 4, true, false, 12, 0).out,
});

// ---- elementwise ----
check("add broadcast", {
  shapes: [[2, 3], [3]],
  op: (_d, [a, b]) => add(a, b),
  ref: bin((x, y) => x + y, [2, 3], [3]),
});
check("sub broadcast", {
  shapes: [[2, 1], [1, 3]],
  op: (_d, [a, b]) => sub(a, b),
  ref: bin((x, y) => x - y, [2, 1], [1, 3]),
});
check("mul broadcast", {
  shapes: [[2, 3, 2], [3, 1]],
  op: (_d, [a, b]) => mul(a, b),
  ref: bin((x, y) => x * y, [2, 3, 2], [3, 1]),
});
check("div broadcast", {
  shapes: [[2, 3], [2, 1]],
  init: (r, k, n) => randData(r, n).map((v) => (k === 1 ? 2 + Math.abs(v) : v)),
  op: (_d, [a, b]) => div(a, b),
  ref: bin((x, y) => x / y, [2, 3], [2, 1]),
});
const unaries: [string, (t: Tensor) => Tensor, (x: number) => number, boolean][] = [
  ["exp", exp, Math.exp, false],
  ["log", log, Math.log, true],
  ["gelu", gelu, geluRef, false],
  ["sqrt", sqrt, Math.sqrt, true],
  ["neg", neg, (x) => -x, false],
  ["scale", (t) => scale(t, 0.7), (x) => x * Math.fround(0.7), false],
  ["relu", relu, (x) => Math.max(x, 0), false],
  ["silu", silu, (x) => x / (1 + Math.exp(-x)), false],
];
for (const [name, f, r, positive] of unaries) {
  check(name, {
    shapes: [[3, 4]],
    // relu: keep inputs away from the kink at 0, where differences are meaningless
    init: (rng, _k, n) =>
      randData(rng, n).map((
        v,
      ) => (positive ? 0.5 + Math.abs(v) : name === "relu" ? v + 0.2 * Math.sign(v) : v)),
    op: (_d, [a]) => f(a),
    ref: ([a]) => a.map(r),
  });
}

// ---- reductions and broadcasting ----
for (const axis of [0, 1, 2]) {
  const shape = [2, 3, 4];
  const outShape = shape.filter((_, i) => i !== axis);
  const red = (a: number[], isMean: boolean) =>
    Array.from({ length: outShape.reduce((x, y) => x * y, 1) }, (_, i) => {
      const idx = unravel(i, outShape);
      let s = 0;
      for (let l = 0; l < shape[axis]; l++) {
        s += a[ravel([...idx.slice(0, axis), l, ...idx.slice(axis)], shape)];
      }
      return isMean ? s / shape[axis] : s;
    });
  check(`sum axis ${axis}`, {
    shapes: [shape],
    op: (_d, [a]) => sum(a, axis),
    ref: ([a]) => red(a, false),
  });
  check(`mean axis ${axis}`, {
    shapes: [shape],
    op: (_d, [a]) => mean(a, axis),
    ref: ([a]) => red(a, true),
  });
}
check("broadcastTo", {
  shapes: [[3, 1]],
  op: (_d, [a]) => broadcastTo(a, [2, 3, 4]),
  ref: ([a]) => broadcastRef((x, _y) => x, a, [3, 1], new Array(24).fill(0), [2, 3, 4]).out,
});

// ---- softmax family ----
for (const causal of [false, true]) {
  for (const isLog of [false, true]) {
    check(`${isLog ? "logSoftmax" : "softmax"}${causal ? " causal" : ""}`, {
      shapes: [[2, 4, 4]],
      op: (_d, [a]) => (isLog ? logSoftmax : softmax)(a, { causal }),
      // masked log-softmax entries are -inf constants: give them weight 0 via a finite stand-in
      ref: ([a]) => softmaxRef(a, 8, 4, isLog, causal).map((v) => (v === -Infinity ? 0 : v)),
    });
  }
}

// ---- layerNorm, embedding, cross-entropy ----
check("layerNorm (x, gamma, beta)", {
  shapes: [[3, 5], [5], [5]],
  op: (_d, [x, g, b]) => layerNorm(x, g, b, 1e-5),
  ref: ([x, g, b]) => layerNormRef(x, g, b, 3, 5, 1e-5),
});
const ids = [3, 0, 3, 1, 4, 3];
check("embedding table", {
  shapes: [[5, 3]],
  op: (d, [w]) => embedding(Tensor.fromArray(ids, [2, 3], { device: d, dtype: "i32" }), w),
  ref: ([w]) => ids.flatMap((i) => w.slice(i * 3, i * 3 + 3)),
});
const targets = [2, 0, 6, 6];
check("crossEntropy (mean)", {
  shapes: [[4, 7]],
  op: (d, [l]) =>
    crossEntropy(l, Tensor.fromArray(targets, [4], { device: d, dtype: "i32" })).reshape([1]),
  ref: ([l]) => [
    targets.reduce((s, t, r) => {
      const row = l.slice(r * 7, r * 7 + 7);
      const m = Math.max(...row);
      return s + Math.log(row.reduce((z, x) => z + Math.exp(x - m), 0)) + m - row[t];
    }, 0) / 4,
  ],
});

// ---- data movement ----
check("permute", {
  shapes: [[2, 3, 4]],
  op: (_d, [a]) => permute(a, [2, 0, 1]),
  ref: ([a]) =>
    Array.from({ length: 24 }, (_, i) => {
      const [x, y, z] = unravel(i, [4, 2, 3]);
      return a[ravel([y, z, x], [2, 3, 4])];
    }),
});
check("narrow", {
  shapes: [[2, 6, 2]],
  op: (_d, [a]) => narrow(a, 1, 2, 3),
  ref: ([a]) =>
    Array.from({ length: 12 }, (_, i) => {
      const [x, y, z] = unravel(i, [2, 3, 2]);
      return a[ravel([x, y + 2, z], [2, 6, 2])];
    }),
});

// ---- concat along the middle axis ----
check("concat ([2,3,4] ++ [2,5,4] on axis 1)", {
  shapes: [[2, 3, 4], [2, 5, 4]],
  op: (_d, [a, b]) => concat(a, b, 1),
  ref: ([a, b]) => {
    const out: number[] = [];
    for (let o = 0; o < 2; o++) {
      out.push(...a.slice(o * 12, o * 12 + 12), ...b.slice(o * 20, o * 20 + 20));
    }
    return out;
  },
});

// ---- y + α·h·wᵀ in place (the LoRA update; fused on WebGPU) ----
check("addMatmulInPlace (y [2,3,5] + 0.7·h·wᵀ)", {
  shapes: [[2, 3, 5], [2, 3, 4], [5, 4]],
  op: (_d, [y, h, w]) => addMatmulInPlace(y, h, w, 0.7),
  ref: ([y, h, w]) =>
    y.map((v, i) => {
      const row = Math.floor(i / 5), n = i % 5;
      let acc = 0;
      for (let k = 0; k < 4; k++) acc += h[row * 4 + k] * w[n * 4 + k];
      return v + 0.7 * acc;
    }),
});

// ---- composite: causal self-attention ----
/** Causal attention in float64: q, k, v rows of [B, T, ·] at column offsets, row stride rs. */
function attentionRef(
  x: number[][],
  [B, T, C, nh]: number[],
  offs = [0, 0, 0],
  rs = C,
): number[] {
  const [q, k, v] = x.length === 1 ? [x[0], x[0], x[0]] : x;
  const hd = C / nh;
  const out = new Array(B * T * C).fill(0);
  const at = (b: number, t: number, h: number) => (b * T + t) * rs + h * hd;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nh; h++) {
      for (let i = 0; i < T; i++) {
        const s: number[] = [];
        for (let j = 0; j <= i; j++) {
          let d = 0;
          for (let c = 0; c < hd; c++) {
            d += q[offs[0] + at(b, i, h) + c] * k[offs[1] + at(b, j, h) + c];
          }
          s.push(d / Math.sqrt(hd));
        }
        const m = Math.max(...s), z = s.reduce((a, y) => a + Math.exp(y - m), 0);
        for (let j = 0; j <= i; j++) {
          for (let c = 0; c < hd; c++) {
            out[(b * T + i) * C + h * hd + c] += (Math.exp(s[j] - m) / z) *
              v[offs[2] + at(b, j, h) + c];
          }
        }
      }
    }
  }
  return out;
}

check("causalSelfAttention (q, k, v)", {
  shapes: [[1, 4, 6], [1, 4, 6], [1, 4, 6]],
  op: (_d, [q, k, v]) => causalSelfAttention(q, k, v, 2),
  ref: (x) => attentionRef(x, [1, 4, 6, 2]),
});

check("causalSelfAttentionQkv (packed [B, T, 3C])", {
  shapes: [[2, 5, 12]],
  op: (_d, [qkv]) => causalSelfAttentionQkv(qkv, 2),
  ref: (x) => attentionRef(x, [2, 5, 4, 2], [0, 4, 8], 12),
});

Deno.test("tape: frozen inputs get no gradient, reused inputs accumulate, errors are clear", async () => {
  const x = Tensor.fromArray([1, 2, 3], [3]);
  const w = Tensor.fromArray([0.5, -1, 2], [3]);
  const tape = new Tape();
  tape.watch(w);
  // L = Σ (w·x + w·w) → dL/dw = x + 2w
  const loss = tape.run(() => sum(add(mul(w, x), mul(w, w)), 0));
  const g = tape.backward(loss);
  assert.equal(g.size, 1);
  assert.ok(!g.has(x));
  assert.deepEqual([...await g.get(w)!.toArray()], [2, 0, 7]);
  assert.throws(() => tape.backward(sum(x, 0)), /does not depend on any watched tensor/);
  assert.throws(() => tape.watch(Tensor.fromArray([1], [1], { dtype: "i32" })), /only f32/);
  const t2 = new Tape();
  t2.watch(w);
  const vec = t2.run(() => mul(w, x));
  assert.throws(() => t2.backward(vec), /pass a seed gradient/);
});
