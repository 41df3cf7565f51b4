// Every WebGPU op against its CPU twin on the same random inputs and random shapes. Both are
// float32 implementations of the same formula, differing only in summation order and in the
// GPU's transcendental functions, so we allow 1e-5 relative + 1e-5 absolute (the float64 tests
// next to each op pin both twins to the exact values with tighter, op-specific bounds).
import {
  add,
  type Backend,
  causalSelfAttention,
  cpu,
  crossEntropyRows,
  div,
  embedding,
  exp,
  gelu,
  layerNorm,
  log,
  logSoftmax,
  matmul,
  max,
  mean,
  mul,
  narrow,
  permute,
  Rng,
  scale,
  softmax,
  sub,
  sum,
  Tensor,
} from "../../lib/mod.ts";
import { assertClose, gpu, randData, randInt } from "../harness.ts";

type Case = (dev: Backend, rng: Rng) => Tensor;

function f32(dev: Backend, rng: Rng, shape: number[], shift = 0): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.fromArray(randData(rng, n).map((v) => v + shift), shape, { device: dev });
}
function ids(dev: Backend, rng: Rng, n: number, V: number): Tensor {
  return Tensor.fromArray(Array.from({ length: n }, () => rng.int(V)), [n], {
    device: dev,
    dtype: "i32",
  });
}

// Each case draws its shapes from `rng` first, so both backends see identical shapes and data.
const cases: Record<string, Case> = {
  matmul: (d, r) => {
    const [M, N, K] = [randInt(r, 1, 90), randInt(r, 1, 90), randInt(r, 1, 90)];
    return matmul(f32(d, r, [M, K]), f32(d, r, [N, K]), { transB: true, bias: f32(d, r, [N]) });
  },
  add: (d, r) => {
    const [a, b] = [randInt(r, 1, 40), randInt(r, 1, 40)];
    return add(f32(d, r, [a, 1, b]), f32(d, r, [3, b]));
  },
  sub: (d, r) => sub(f32(d, r, [randInt(r, 1, 500)]), f32(d, r, [1])),
  mul: (d, r) => {
    const n = randInt(r, 1, 50);
    return mul(f32(d, r, [n, 7]), f32(d, r, [n, 1]));
  },
  div: (d, r) => {
    const n = randInt(r, 1, 300);
    return div(f32(d, r, [n]), f32(d, r, [n], 5));
  },
  scale: (d, r) => scale(f32(d, r, [randInt(r, 1, 300)]), 0.3),
  exp: (d, r) => exp(f32(d, r, [randInt(r, 1, 300)])),
  log: (d, r) => log(f32(d, r, [randInt(r, 1, 300)], 10)),
  gelu: (d, r) => gelu(f32(d, r, [randInt(r, 1, 300)])),
  sum: (d, r) => sum(f32(d, r, [randInt(r, 1, 30), randInt(r, 1, 30), 3]), 1),
  mean: (d, r) => mean(f32(d, r, [randInt(r, 1, 30), randInt(r, 1, 30)]), 0),
  max: (d, r) => max(f32(d, r, [randInt(r, 1, 30), randInt(r, 1, 30)]), -1),
  softmax: (d, r) => softmax(f32(d, r, [randInt(r, 1, 20), randInt(r, 1, 300)])),
  logSoftmax: (d, r) => logSoftmax(f32(d, r, [randInt(r, 1, 20), randInt(r, 1, 300)])),
  causalSoftmax: (d, r) => {
    const T = randInt(r, 1, 40);
    return softmax(f32(d, r, [2, T, T]), { causal: true });
  },
  layerNorm: (d, r) => {
    const C = randInt(r, 1, 200);
    return layerNorm(f32(d, r, [randInt(r, 1, 20), C]), f32(d, r, [C]), f32(d, r, [C]));
  },
  embedding: (d, r) => {
    const [V, C, n] = [randInt(r, 1, 50), randInt(r, 1, 40), randInt(r, 1, 30)];
    return embedding(ids(d, r, n, V), f32(d, r, [V, C]));
  },
  crossEntropy: (d, r) => {
    const [n, V] = [randInt(r, 1, 30), randInt(r, 1, 300)];
    return crossEntropyRows(f32(d, r, [n, V]), ids(d, r, n, V));
  },
  attention: (d, r) => {
    const [B, T, nh, hd] = [
      randInt(r, 1, 2),
      randInt(r, 1, 40),
      randInt(r, 1, 3),
      randInt(r, 1, 9),
    ];
    const s = [B, T, nh * hd];
    return causalSelfAttention(f32(d, r, s), f32(d, r, s), f32(d, r, s), nh);
  },
  permute: (d, r) => permute(f32(d, r, [randInt(r, 1, 5), randInt(r, 1, 5), 3, 2]), [3, 1, 0, 2]),
  narrow: (d, r) => narrow(f32(d, r, [4, randInt(r, 3, 30)]), 1, 1, 2),
};

for (const [name, make] of Object.entries(cases)) {
  Deno.test({
    name: `twins: ${name} webgpu = cpu on random shapes`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const g = await gpu();
      for (let trial = 0; trial < 4; trial++) {
        const seed = 1000 * trial + name.length;
        const want = await make(cpu, new Rng(seed)).toArray();
        const got = await make(g, new Rng(seed)).toArray();
        const tol = Array.from(want, (w) => 1e-5 + 1e-5 * Math.abs(w));
        assertClose(got, want, tol, `${name} trial ${trial}`);
      }
    },
  });
}
