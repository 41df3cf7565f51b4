/**
 * The WebGPU f32 matmul variants (lib/backend/webgpu/kernels/matmul.ts) against a float64
 * reference and the CPU twin: every variant × every transposition, shapes that are not tile
 * multiples, aligned (vec4) and unaligned operands, batched and broadcast strides, bias, alpha and
 * accumulate; plus variant choice (env, heuristic, tuning) and the errors of bad calls.
 */

import assert from "node:assert/strict";
import { type Backend, cpu, type MatmulParams, Rng } from "../../lib/mod.ts";
import { matmulCpu } from "../../lib/backend/cpu/kernels.ts";
import {
  MATMUL_VARIANTS,
  matmulKernel,
  matmulSpec,
  matmulVariant,
  matmulWorkgroupBytes,
} from "../../lib/backend/webgpu/kernels/matmul.ts";
import {
  heuristicVariant,
  MATMUL_VARIANT_ENV,
  matmulBucket,
  variantFromEnv,
} from "../../lib/backend/webgpu/matmul_tuning.ts";
import type { WebGpuBackend } from "../../lib/backend/webgpu/webgpu_backend.ts";
import { assertClose, gpu, randData, U32 } from "../harness.ts";

/** One product to check. */
interface Case {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** Batch size and whether each operand has its own matrix per batch element (else shared). */
  batch: number;
  batchA: boolean;
  batchB: boolean;
  bias: boolean;
  alpha: number;
  accumulate: boolean;
}

const base: Case = {
  M: 1,
  N: 1,
  K: 1,
  transA: false,
  transB: false,
  batch: 1,
  batchA: true,
  batchB: true,
  bias: false,
  alpha: 1,
  accumulate: false,
};

// Per variant: all four transpositions; unaligned (scalar loads/stores) and aligned (vec4)
// operands; sizes 1, 7, 63, 65, 129, 130 and others that are not multiples of 64 or 128; bias,
// alpha and accumulate; batched and broadcast operands.
const CASES: Case[] = [
  { ...base, M: 65, N: 130, K: 33, bias: true, alpha: 0.37 },
  { ...base, M: 132, N: 68, K: 36, transA: true, transB: true, accumulate: true },
  { ...base, M: 63, N: 7, K: 20, transB: true, batch: 3, batchB: false, bias: true },
  {
    ...base,
    M: 129,
    N: 1,
    K: 7,
    transA: true,
    batch: 2,
    batchA: false,
    bias: true,
    alpha: -1.5,
    accumulate: true,
  },
  { ...base, M: 7, N: 196, K: 129, accumulate: true, alpha: 2, batch: 2 },
  { ...base, M: 1, N: 64, K: 130, transA: true, transB: true, bias: true },
  // Both operands batched and k-major: a k-slice past K would read the next matrix (not zeros).
  { ...base, M: 30, N: 50, K: 13, transA: true, batch: 3, alpha: 0.5 },
];

/** The backend-level parameters of a case. */
function params(c: Case): MatmulParams {
  return {
    batch: c.batch,
    M: c.M,
    N: c.N,
    K: c.K,
    transA: c.transA,
    transB: c.transB,
    strideA: c.batchA ? c.M * c.K : 0,
    strideB: c.batchB ? c.K * c.N : 0,
    alpha: c.alpha,
    accumulate: c.accumulate,
  };
}

/** Random operands of a case (never zeros). */
function operands(c: Case, rng: Rng) {
  return {
    a: randData(rng, (c.batchA ? c.batch : 1) * c.M * c.K),
    b: randData(rng, (c.batchB ? c.batch : 1) * c.K * c.N),
    bias: randData(rng, c.N),
    prev: randData(rng, c.batch * c.M * c.N),
  };
}

/**
 * Float64 reference of `alpha·op(A)·op(B) + bias + prev` and the tolerance of each element.
 * Tolerance: the f32 dot product of K terms in any order (fma included) is within γ_K·Σ|a_k b_k|;
 * scaling by alpha and adding bias and the previous output each add one rounding of at most
 * u·(magnitude so far). We allow 2·(K+4)·u·(|alpha|·Σ|a_k b_k| + |bias| + |prev|), plus 1e-30
 * for exact zeros.
 */
function reference(c: Case, d: ReturnType<typeof operands>) {
  const p = params(c);
  const out: number[] = [], tol: number[] = [];
  for (let z = 0; z < c.batch; z++) {
    for (let i = 0; i < c.M; i++) {
      for (let j = 0; j < c.N; j++) {
        let s = 0, sa = 0;
        for (let k = 0; k < c.K; k++) {
          const x = c.transA ? d.a[z * p.strideA + k * c.M + i] : d.a[z * p.strideA + i * c.K + k];
          const y = c.transB ? d.b[z * p.strideB + j * c.K + k] : d.b[z * p.strideB + k * c.N + j];
          s += x * y;
          sa += Math.abs(x * y);
        }
        let v = c.alpha * s, mag = Math.abs(c.alpha) * sa;
        if (c.bias) {
          v += d.bias[j];
          mag += Math.abs(d.bias[j]);
        }
        if (c.accumulate) {
          const prev = d.prev[(z * c.M + i) * c.N + j];
          v += prev;
          mag += Math.abs(prev);
        }
        out.push(v);
        tol.push(2 * (c.K + 4) * U32 * mag + 1e-30);
      }
    }
  }
  return { out, tol };
}

/** Runs a case through `dev.matmul` (writing into a prefilled output when accumulating). */
async function run(dev: Backend, c: Case, d: ReturnType<typeof operands>): Promise<Float32Array> {
  const n = c.batch * c.M * c.N;
  const a = dev.upload("f32", new Float32Array(d.a));
  const b = dev.upload("f32", new Float32Array(d.b));
  const bias = c.bias ? dev.upload("f32", new Float32Array(d.bias)) : null;
  const out = c.accumulate ? dev.upload("f32", new Float32Array(d.prev)) : undefined;
  const o = dev.matmul(a, b, bias, params(c), out);
  if (out) assert.equal(o, out, "accumulate writes into the given output");
  const got = (await dev.read(o, "f32", n)) as Float32Array;
  for (const s of [a, b, bias, o]) if (s) dev.free(s);
  return got;
}

const label = (c: Case) =>
  `M${c.M} N${c.N} K${c.K} tA${+c.transA} tB${+c.transB} batch${c.batch}` +
  `${c.batchA ? "" : " sharedA"}${c.batchB ? "" : " sharedB"} bias${+c.bias} alpha${c.alpha}` +
  ` acc${+c.accumulate}`;

Deno.test("matmul variants: cpu twin with alpha and accumulate vs float64", async () => {
  const rng = new Rng(41);
  for (const c of CASES) {
    const d = operands(c, rng);
    const ref = reference(c, d);
    assertClose(await run(cpu, c, d), ref.out, ref.tol, `cpu ${label(c)}`);
  }
});

Deno.test("matmul variants: cpu twin numerics unchanged by alpha 1 / accumulate false", () => {
  const rng = new Rng(42);
  const p: MatmulParams = {
    batch: 2,
    M: 37,
    N: 29,
    K: 45,
    transA: true,
    transB: false,
    strideA: 37 * 45,
    strideB: 0,
  };
  const a = new Float32Array(randData(rng, 2 * 37 * 45)), b = new Float32Array(randData(rng, 1305));
  const bias = new Float32Array(randData(rng, 29));
  const plain = matmulCpu(a, b, bias, p);
  const explicit = matmulCpu(a, b, bias, { ...p, alpha: 1, accumulate: false });
  // Bitwise: the shipped model's reproducibility depends on it.
  assert.deepEqual(explicit, plain);
});

for (const v of MATMUL_VARIANTS) {
  Deno.test({
    name: `matmul variants: ${v.name} vs float64 and the cpu twin [webgpu]`,
    sanitizeResources: false, // the shared GPU device outlives a single test
    sanitizeOps: false,
    fn: async () => {
      const dev = (await gpu()) as WebGpuBackend;
      dev.forceMatmulVariant(v.name);
      try {
        const rng = new Rng(100 + MATMUL_VARIANTS.indexOf(v));
        for (const c of CASES) {
          assert.equal(dev.matmulVariantFor(params(c)).name, v.name);
          const d = operands(c, rng);
          const ref = reference(c, d);
          const got = await run(dev, c, d);
          assertClose(got, ref.out, ref.tol, `${v.name} ${label(c)}`);
          // Twin check: both sides are within the bound above of the exact value, so within
          // twice that bound of each other.
          const twin = await run(cpu, c, d);
          assertClose(got, twin, ref.tol.map((t) => 2 * t), `${v.name} vs cpu ${label(c)}`);
        }
      } finally {
        dev.forceMatmulVariant(null);
      }
    },
  });
}

Deno.test("matmul variants: pipeline keys encode variant, transpositions and vec4 access", () => {
  const p: MatmulParams = {
    batch: 1,
    M: 64,
    N: 30,
    K: 8,
    transA: false,
    transB: true,
    strideA: 0,
    strideB: 0,
  };
  const s = matmulSpec(p);
  assert.deepEqual(s, { transA: false, transB: true, vecA: true, vecB: true, vecO: false });
  assert.equal(matmulSpec({ ...p, strideA: 6 }).vecA, false, "an odd batch stride disables vec4");
  const keys = MATMUL_VARIANTS.map((v) => matmulKernel(v, s).key);
  assert.equal(new Set(keys).size, keys.length);
  assert.equal(matmulKernel(matmulVariant("t128db"), s).key, "matmul:t128db:01:110");
  assert.notEqual(
    matmulKernel(matmulVariant("t64"), { ...s, vecO: true }).key,
    matmulKernel(matmulVariant("t64"), s).key,
  );
});

Deno.test("matmul variants: heuristic and buckets", () => {
  const all = () => true;
  assert.equal(heuristicVariant({ batch: 1, M: 4096, N: 4096 }, all).name, "t128");
  assert.equal(heuristicVariant({ batch: 1, M: 256, N: 192 }, all).name, "t64");
  assert.equal(heuristicVariant({ batch: 64, M: 256, N: 256 }, all).name, "t128");
  assert.equal(heuristicVariant({ batch: 1, M: 4096, N: 4096 }, () => false).name, "t64");
  // Software adapters: the double-buffered 128 tile whenever both sides reach 64.
  assert.equal(heuristicVariant({ batch: 1, M: 1024, N: 192 }, all, true).name, "t128db");
  assert.equal(heuristicVariant({ batch: 1, M: 1024, N: 8 }, all, true).name, "t64");
  assert.equal(heuristicVariant({ batch: 1, M: 32, N: 768 }, all, true).name, "t64");
  assert.equal(heuristicVariant({ batch: 1, M: 1024, N: 192 }, () => false, true).name, "t64");
  const p = { batch: 1, M: 4000, N: 700, K: 3000, transA: false, transB: true };
  assert.equal(matmulBucket(p), "m12n9k12t01");
  assert.equal(matmulBucket({ ...p, batch: 2, M: 2000 }), "m12n9k12t01");
  assert.notEqual(matmulBucket({ ...p, transA: true }), matmulBucket(p));
  const bytes = (name: string) => matmulWorkgroupBytes(matmulVariant(name));
  assert.equal(bytes("t128db"), 2 * bytes("t128"), "double buffering doubles workgroup memory");
});

Deno.test("matmul variants: LORALAB_MATMUL_VARIANT is read and checked", () => {
  const old = Deno.env.get(MATMUL_VARIANT_ENV);
  try {
    Deno.env.set(MATMUL_VARIANT_ENV, "t128db");
    assert.equal(variantFromEnv()?.name, "t128db");
    Deno.env.set(MATMUL_VARIANT_ENV, "t256");
    assert.throws(() => variantFromEnv(), /LORALAB_MATMUL_VARIANT=t256: .*unknown variant.*t64/);
    Deno.env.delete(MATMUL_VARIANT_ENV);
    assert.equal(variantFromEnv(), null);
  } finally {
    if (old === undefined) Deno.env.delete(MATMUL_VARIANT_ENV);
    else Deno.env.set(MATMUL_VARIANT_ENV, old);
  }
});

Deno.test({
  name: "matmul variants: tuning records the fastest variant per bucket [webgpu]",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dev = (await gpu()) as WebGpuBackend;
    const shape = { M: 60, N: 36, K: 24, transB: true };
    const p = { batch: 1, ...shape, transA: false };
    if (dev.engine.isSoftware) {
      assert.deepEqual(await dev.tuneMatmul([shape]), [], "software adapters skip tuning");
    }
    const [r] = await dev.tuneMatmul([shape], { force: true, minMs: 1 });
    try {
      const fits = MATMUL_VARIANTS.filter((v) => dev.matmulVariantFits(v)).map((v) => v.name);
      assert.deepEqual(Object.keys(r.ms), fits);
      const fastest = fits.reduce((x, y) => (r.ms[y] < r.ms[x] ? y : x));
      assert.equal(r.winner, fastest);
      assert.equal(r.bucket, matmulBucket(p));
      assert.equal(dev.matmulVariantFor({ ...p, strideA: 0, strideB: 0 }).name, r.winner);
      dev.forceMatmulVariant("t64x128");
      assert.equal(dev.matmulVariantFor({ ...p, strideA: 0, strideB: 0 }).name, "t64x128");
    } finally {
      dev.forceMatmulVariant(null);
      dev.clearMatmulTuning();
    }
  },
});

Deno.test({
  name: "matmul variants: bad calls get one clear error [cpu, webgpu]",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const g = (await gpu()) as WebGpuBackend;
    assert.throws(() => g.forceMatmulVariant("huge"), /unknown variant 'huge'/);
    const p: MatmulParams = {
      batch: 1,
      M: 3,
      N: 2,
      K: 4,
      transA: false,
      transB: false,
      strideA: 0,
      strideB: 0,
    };
    for (const dev of [cpu, g]) {
      const a = dev.upload("f32", new Float32Array(12).fill(1));
      const b = dev.upload("f32", new Float32Array(8).fill(2));
      assert.throws(() => dev.matmul(a, b, null, { ...p, accumulate: true }), /accumulate needs/);
      assert.throws(() => dev.matmul(a, b, null, p, a), /must not be an input/);
      assert.throws(() => dev.matmul(a, b, null, { ...p, alpha: NaN }), /alpha must be finite/);
      const small = dev.upload("f32", new Float32Array(2));
      if (dev === cpu) assert.throws(() => dev.matmul(a, b, null, p, small), /output of 2/);
      for (const s of [a, b, small]) dev.free(s);
    }
  },
});

Deno.test({
  name:
    "matmul variants: bit-identical results (tuning never changes numbers); shapes are recorded",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dev = (await gpu()) as WebGpuBackend;
    const rng = new Rng(404);
    // Every variant accumulates each output over k = 0, 1, … with fma, whatever its tiling, so
    // the results agree to the last bit; exact resume relies on it when tuning picks a variant.
    for (
      const [M, N, K, tA, tB] of [[130, 97, 301, false, true], [64, 200, 129, true, false]] as const
    ) {
      const a = dev.upload("f32", new Float32Array(randData(rng, M * K)));
      const b = dev.upload("f32", new Float32Array(randData(rng, K * N)));
      const p: MatmulParams = { batch: 1, M, N, K, transA: tA, transB: tB, strideA: 0, strideB: 0 };
      const outs: Float32Array[] = [];
      for (const v of MATMUL_VARIANTS) {
        if (!dev.matmulVariantFits(v)) continue;
        dev.forceMatmulVariant(v.name);
        const o = dev.matmul(a, b, null, p);
        outs.push((await dev.read(o, "f32", M * N)) as Float32Array);
        dev.free(o);
      }
      dev.forceMatmulVariant(null);
      assert.ok(outs.length >= 2);
      for (const o of outs) assert.deepEqual(o, outs[0]);
      dev.free(a);
      dev.free(b);
    }
    const seen = dev.seenMatmulShapes();
    assert.ok(seen.some((s) => s.M === 130 && s.N === 97 && s.K === 301 && s.transB));
  },
});
