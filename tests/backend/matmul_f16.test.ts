// f16 matrix products: the CPU twins (matmulF16Cpu, f32 and f16 accumulation) against float64,
// `matmul` on f16 tensors on both backends (WebGPU: the WGSL kernel; CPU: the twin) against
// float64, the WGSL kernel against its twin, and the dtype errors.
//
// Inputs are N(0,1) draws rounded to f16, so every reference below is the float64 product of the
// very same (f16) values: the tolerances measure only accumulation and output rounding.
// Bounds (S = Σ_k |a_k b_k| + |bias|, e = the float64 value, u16 = 2^-11, u32 = 2^-24):
// - f32 accumulation, f16 output: the f32 sum of K products and the bias is within γ_{K+1}(u32)·S
//   of e (products are exact in f32); rounding it to f16 adds ≤ u16·|sum| (relative) or ≤ 2^-25
//   (in the f16 subnormal range). Allowed: u16·|e| + 2·(K+2)·u32·S + 2^-24.
// - f16 accumulation: an f16 inner product with bias, products rounded or fused, is within
//   γ_{K+1}(u16)·S of e (Higham, eq. 3.5: each term passes ≤ K+1 roundings of ≤ u16 relative
//   error), plus ≤ 2^-25 absolute per rounding in the f16 subnormal range (2K+1 of them).
//   Allowed: 1.25·(K+1)·u16·S + (2K+2)·2^-25 (γ_n ≤ 1.25·n·u while n·u ≤ 0.2: K ≤ 400 here).
import assert from "node:assert/strict";
import { type Backend, cpu, matmul, Rng, Tensor } from "../../lib/mod.ts";
import { MATMUL_VARIANTS, type WebGpuBackend } from "../../lib/backend/webgpu/mod.ts";
import { matmulF16Cpu } from "../../lib/backend/cpu/matmul_f16.ts";
import type { MatmulParams } from "../../lib/backend/backend.ts";
import { assertClose, bothBackends, gpu, randInt } from "../harness.ts";
import { matmulRef } from "../ref.ts";

const U16 = 2 ** -11, U32 = 2 ** -24;
type Acc = "f32" | "f16";

/** N(0,1) draws rounded to f16 (as float64 numbers, exactly the f16 values). */
function randF16(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => Math.f16round(rng.normal()));
}

/** Per-element tolerance against the float64 value (see the header). */
function tolF16(ref: { out: number[]; absDot: number[] }, K: number, acc: Acc): number[] {
  return ref.out.map((e, i) =>
    acc === "f32"
      ? U16 * Math.abs(e) + 2 * (K + 2) * U32 * ref.absDot[i] + 2 ** -24
      : 1.25 * (K + 1) * U16 * ref.absDot[i] + (2 * K + 2) * 2 ** -25
  );
}

/** A random product: shapes straddle the 64×64 tile and the 16-deep k-slice. */
function randomCase(rng: Rng, dims: number[]) {
  const pick = () => dims[rng.int(dims.length)];
  const M = pick(), N = pick(), K = pick();
  // mode 0: both batched, 1: b shared (2-D), 2: a shared, 3: both 2-D.
  const mode = rng.int(4), B = mode === 3 ? 1 : randInt(rng, 1, 3);
  const aB = mode === 0 || mode === 1, bB = mode === 0 || mode === 2;
  const transA = rng.int(2) === 1, transB = rng.int(2) === 1, withBias = rng.int(2) === 1;
  const a = randF16(rng, (aB ? B : 1) * M * K), b = randF16(rng, (bB ? B : 1) * K * N);
  const bias = withBias ? randF16(rng, N) : null;
  const p: MatmulParams = {
    batch: B,
    M,
    N,
    K,
    transA,
    transB,
    strideA: aB ? M * K : 0,
    strideB: bB ? K * N : 0,
  };
  const aShape = [...(aB ? [B] : []), ...(transA ? [K, M] : [M, K])];
  const bShape = [...(bB ? [B] : []), ...(transB ? [N, K] : [K, N])];
  const outShape = aB || bB ? [B, M, N] : [M, N];
  const ref = matmulRef(a, b, bias, p.batch, M, N, K, transA, transB, p.strideA, p.strideB);
  const what = `B${p.batch} M${M} N${N} K${K} tA${transA} tB${transB} bias ${withBias} ` +
    `a ${aB ? "batched" : "shared"} b ${bB ? "batched" : "shared"}`;
  return { a, b, bias, p, aShape, bShape, outShape, ref, what };
}

const DIMS = [1, 2, 15, 16, 17, 63, 64, 65, 100, 130];

for (const acc of ["f32", "f16"] as const) {
  Deno.test(`matmulF16Cpu (acc ${acc}): random shapes vs float64 of the f16 inputs`, () => {
    const rng = new Rng(acc === "f32" ? 21 : 22);
    for (let trial = 0; trial < 16; trial++) {
      const c = randomCase(rng, DIMS);
      const out = matmulF16Cpu(
        Float16Array.from(c.a),
        Float16Array.from(c.b),
        c.bias ? Float16Array.from(c.bias) : null,
        c.p,
        { accumulate: acc, out: "f16" },
      );
      assert.ok(out instanceof Float16Array);
      assertClose(out, c.ref.out, tolF16(c.ref, c.p.K, acc), c.what);
    }
  });
}

/** `matmul` on f16 tensors of `dev`: [output dtype, values]. */
async function runOp(
  dev: Backend,
  c: ReturnType<typeof randomCase>,
  accumulate: Acc,
  outDtype: "f16" | "f32",
): Promise<{ dtype: string; shape: readonly number[]; out: ArrayLike<number> }> {
  const h = { device: dev, dtype: "f16" as const };
  const y = matmul(Tensor.fromArray(c.a, c.aShape, h), Tensor.fromArray(c.b, c.bShape, h), {
    transA: c.p.transA,
    transB: c.p.transB,
    bias: c.bias ? Tensor.fromArray(c.bias, [c.p.N], h) : undefined,
    accumulate,
    outDtype,
  });
  const out = await y.toArray();
  y.dispose();
  return { dtype: y.dtype, shape: y.shape, out };
}

for (const acc of ["f32", "f16"] as const) {
  bothBackends(
    `matmul f16 (acc ${acc}): random shapes, transpositions, batch, bias`,
    async (dev) => {
      const rng = new Rng(acc === "f32" ? 31 : 32);
      for (let trial = 0; trial < 10; trial++) {
        const c = randomCase(rng, DIMS);
        const outDtype = trial % 3 === 2 ? "f32" : "f16";
        const r = await runOp(dev, c, acc, outDtype);
        assert.equal(r.dtype, outDtype);
        assert.deepEqual(r.shape, c.outShape);
        // An f32 output skips the final f16 rounding: the f16-output bound still holds.
        assertClose(r.out, c.ref.out, tolF16(c.ref, c.p.K, acc), `${c.what} out ${outDtype}`);
      }
    },
  );
}

Deno.test("matmul f16: the WGSL kernel matches its CPU twin", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const g = await gpu();
  const rng = new Rng(41);
  for (let trial = 0; trial < 8; trial++) {
    const c = randomCase(rng, [1, 17, 63, 65, 130, 200]);
    for (const acc of ["f32", "f16"] as const) {
      const want = matmulF16Cpu(
        Float16Array.from(c.a),
        Float16Array.from(c.b),
        c.bias ? Float16Array.from(c.bias) : null,
        c.p,
        { accumulate: acc, out: "f16" },
      );
      const got = (await runOp(g, c, acc, "f16")).out;
      // acc f32: both sum k = 0 … K-1 in order, exact products, one f32 rounding per step, so
      // they agree bit for bit; allowed: one f16 ulp of the result (≤ 2^-10·|x|, 2^-24 among
      // subnormals), as WGSL leaves the f32 -> f16 conversion's rounding to the device.
      // acc f16: lavapipe rounds product and sum like the twin (bit for bit), but WGSL allows a
      // fused f16 fma, after which the two sums may part; each is within the f16 bound of the
      // float64 value (header), so allowed: twice that bound.
      const tol = acc === "f32"
        ? Array.from(want, (w) => Math.max(2 ** -10 * Math.abs(w), 2 ** -24))
        : tolF16(c.ref, c.p.K, "f16").map((x) => 2 * x);
      assertClose(got, want, tol, `${c.what} acc ${acc}: gpu vs twin`);
    }
  }
});

bothBackends(
  "matmul f16: f16 accumulation is really coarser than f32 accumulation",
  async (dev) => {
    // K = 1024: the f16 running sums (|s| ~ 30) are rounded 1024 times, so their error grows
    // like √K·ulp(|s|)/… while f32 accumulation ends with one f16 rounding of the result: their mean
    // errors against float64 differ by far more than the factor 3 asserted (a kernel that ignored
    // the mode would give a ratio of 1).
    const rng = new Rng(51);
    const [M, N, K] = [9, 70, 1024];
    const a = randF16(rng, M * K), b = randF16(rng, K * N);
    const ref = matmulRef(a, b, null, 1, M, N, K, false, false, 0, 0).out;
    const h = { device: dev, dtype: "f16" as const };
    const err = async (accumulate: Acc) => {
      const y = matmul(Tensor.fromArray(a, [M, K], h), Tensor.fromArray(b, [K, N], h), {
        accumulate,
        outDtype: "f32",
      });
      const out = Array.from(await y.toArray());
      return out.reduce((s, v, i) => s + Math.abs(v - ref[i]), 0) / out.length;
    };
    const e32 = await err("f32"), e16 = await err("f16");
    assert.ok(e16 > 3 * e32, `mean |error|: f16 accumulation ${e16}, f32 accumulation ${e32}`);
  },
);

Deno.test("matmul: dtype errors name both dtypes", () => {
  const f16 = (shape: number[]) => Tensor.zeros(shape, { device: cpu, dtype: "f16" });
  const f32 = (shape: number[]) => Tensor.zeros(shape, { device: cpu });
  assert.throws(() => matmul(f16([2, 3]), f32([3, 4])), {
    name: "TypeError",
    message: "matmul: [2,3] @ [3,4]: a is f16 but b is f32; both operands need the same dtype " +
      "(f32 or f16; cast one)",
  });
  assert.throws(() => matmul(f32([2, 3]), f16([3, 4])), /a is f32 but b is f16/);
  assert.throws(
    () => matmul(f16([2, 3]), f16([3, 4]), { bias: f32([4]) }),
    /bias is f32 but the operands are f16/,
  );
  assert.throws(
    () => matmul(Tensor.zeros([2, 3], { dtype: "i32" }), Tensor.zeros([3, 4], { dtype: "i32" })),
    /operands are i32; matmul takes f32 or f16/,
  );
  assert.throws(
    () => matmul(f32([2, 3]), f32([3, 4]), { accumulate: "f16" }),
    /accumulate and outDtype apply to f16 operands only/,
  );
  assert.throws(
    () => matmul(f16([2, 3]), f16([3, 4]), { accumulate: "f8" as "f16" }),
    /accumulate must be "f32" or "f16", got f8/,
  );
});

Deno.test({
  name: "matmul f16 (acc f32) on every f32 matmul variant equals the CPU twin bit for bit",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const g = (await gpu()) as WebGpuBackend;
    const rng = new Rng(41);
    // Products of f16 values are exact in f32 and every variant sums k in order with fma, as the
    // twin does: equal to the last bit. Cases [M, N, K, transA, transB, output]: vec4 loads and
    // stores with an f16 output, then scalar ones with an f32 output.
    const cases = [[70, 132, 68, false, true, "f16"], [9, 129, 77, true, false, "f32"]] as const;
    try {
      for (const [M, N, K, transA, transB, out] of cases) {
        const a = randF16(rng, M * K), b = randF16(rng, K * N), bias = randF16(rng, N);
        const p: MatmulParams = { batch: 1, M, N, K, transA, transB, strideA: 0, strideB: 0 };
        const f16 = (x: number[]) => Float16Array.from(x);
        const want = matmulF16Cpu(f16(a), f16(b), f16(bias), p, { accumulate: "f32", out });
        const h = { device: g, dtype: "f16" as const };
        for (const v of MATMUL_VARIANTS) {
          if (!g.matmulVariantFits(v)) continue;
          g.forceMatmulVariant(v.name);
          const y = matmul(
            Tensor.fromArray(a, transA ? [K, M] : [M, K], h),
            Tensor.fromArray(b, transB ? [N, K] : [K, N], h),
            { transA, transB, bias: Tensor.fromArray(bias, [N], h), outDtype: out },
          );
          assert.deepEqual(
            Array.from(await y.toArray()),
            Array.from(want),
            `${v.name} M${M} N${N} K${K} tA${transA} tB${transB} out ${out}`,
          );
        }
      }
    } finally {
      g.forceMatmulVariant(null);
    }
  },
});
