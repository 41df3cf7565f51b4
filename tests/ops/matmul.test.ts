import assert from "node:assert/strict";
import { addMatmulInPlace, cpu, matmul, Rng, Tensor } from "../../lib/mod.ts";
import { assertClose, bothBackends, gpu, randData, randInt, t, U32 } from "../harness.ts";
import { matmulRef } from "../ref.ts";
import type { WebGpuBackend } from "../../lib/backend/webgpu/mod.ts";

// Tolerance: a float32 dot product of K terms (plus bias) in any summation order is within
// γ_{K+1}·Σ|a_k b_k| of the exact value, γ_n ≈ n·u (u = 2^-24). We allow 2·(K+2)·u·Σ|a_k b_k|,
// which also covers fused multiply-add on the GPU, plus 1e-30 for exact zeros.
function tol(absDot: number[], K: number): number[] {
  return absDot.map((s) => 2 * (K + 2) * U32 * s + 1e-30);
}

bothBackends(
  "matmul: random 2-D shapes, all transpositions, with and without bias",
  async (dev) => {
    const rng = new Rng(11);
    // Sizes straddle the 64×64 tile and the 16-deep k-slice, and include 1.
    const dims = [1, 2, 15, 16, 17, 63, 64, 65, 100, 130];
    for (let trial = 0; trial < 12; trial++) {
      const M = dims[rng.int(dims.length)], N = dims[rng.int(dims.length)];
      const K = dims[rng.int(dims.length)];
      const transA = rng.int(2) === 1, transB = rng.int(2) === 1, withBias = rng.int(2) === 1;
      const a = randData(rng, M * K), b = randData(rng, K * N), bias = randData(rng, N);
      const ref = matmulRef(a, b, withBias ? bias : null, 1, M, N, K, transA, transB, 0, 0);
      const y = matmul(t(dev, a, transA ? [K, M] : [M, K]), t(dev, b, transB ? [N, K] : [K, N]), {
        transA,
        transB,
        bias: withBias ? t(dev, bias, [N]) : undefined,
      });
      assert.deepEqual(y.shape, [M, N]);
      assertClose(
        await y.toArray(),
        ref.out,
        tol(ref.absDot, K),
        `M${M} N${N} K${K} tA${transA} tB${transB}`,
      );
    }
  },
);

bothBackends("matmul: batched, broadcast 2-D operand on either side", async (dev) => {
  const rng = new Rng(12);
  for (let trial = 0; trial < 6; trial++) {
    const B = randInt(rng, 1, 4), M = randInt(rng, 1, 70), N = randInt(rng, 1, 70);
    const K = randInt(rng, 1, 70);
    const mode = trial % 3; // 0: both batched, 1: b shared, 2: a shared
    const transA = rng.int(2) === 1, transB = rng.int(2) === 1;
    const aB = mode !== 2, bB = mode !== 1;
    const a = randData(rng, (aB ? B : 1) * M * K), b = randData(rng, (bB ? B : 1) * K * N);
    const ref = matmulRef(a, b, null, B, M, N, K, transA, transB, aB ? M * K : 0, bB ? K * N : 0);
    const aShape = [...(aB ? [B] : []), ...(transA ? [K, M] : [M, K])];
    const bShape = [...(bB ? [B] : []), ...(transB ? [N, K] : [K, N])];
    const y = matmul(t(dev, a, aShape), t(dev, b, bShape), { transA, transB });
    assert.deepEqual(y.shape, [B, M, N]);
    assertClose(await y.toArray(), ref.out, tol(ref.absDot, K), `batched mode ${mode}`);
  }
});

bothBackends("matmul: 4-D batch (attention shape)", async (dev) => {
  const rng = new Rng(13);
  const [B, H, T, D] = [2, 3, 9, 5];
  const q = randData(rng, B * H * T * D), k = randData(rng, B * H * T * D);
  const ref = matmulRef(q, k, null, B * H, T, T, D, false, true, T * D, T * D);
  const y = matmul(t(dev, q, [B, H, T, D]), t(dev, k, [B, H, T, D]), { transB: true });
  assert.deepEqual(y.shape, [B, H, T, T]);
  assertClose(await y.toArray(), ref.out, tol(ref.absDot, D), "4-D");
});

Deno.test("matmul: webgpu equals the cpu twin on a random non-tile shape", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const g = await gpu();
  const [M, N, K] = [77, 131, 45];
  const a = Tensor.randn([M, K], { seed: 1 }), b = Tensor.randn([K, N], { seed: 2 });
  const want = await matmul(a, b).toArray();
  const got = await matmul(
    Tensor.fromArray(await a.toArray(), [M, K], { device: g }),
    Tensor.fromArray(await b.toArray(), [K, N], { device: g }),
  ).toArray();
  // Both are float32 sums of the same 45 products in different orders: 2·K·u relative to Σ|ab|,
  // bounded here by 2·K·u·K·max|a||b| with |a|,|b| < 6.
  assertClose(got, want, 2 * K * U32 * K * 36, "gpu vs cpu");
});

Deno.test("matmul: shape errors name the problem", () => {
  const a = Tensor.zeros([2, 3], { device: cpu }), b = Tensor.zeros([4, 5], { device: cpu });
  assert.throws(() => matmul(a, b), {
    message: "matmul: [2,3] @ [4,5]: inner dims 3 and 4 differ",
  });
  assert.throws(
    () => matmul(Tensor.zeros([2, 2, 3]), Tensor.zeros([3, 3, 4])),
    /batch dims \[2\] and \[3\] differ/,
  );
  assert.throws(
    () => matmul(a, Tensor.zeros([3, 4]), { bias: Tensor.zeros([5]) }),
    /bias \[5\] should be \[4\]/,
  );
  assert.throws(() => matmul(Tensor.zeros([3]), b), /at least 2 dims/);
});

bothBackends("addMatmulInPlace: y + α·h·wᵀ against float64; shapes are checked", async (dev) => {
  const rng = new Rng(91);
  for (const [B, T, N, r] of [[1, 1, 1, 1], [3, 70, 130, 8], [2, 65, 64, 16]]) {
    const rows = B * T;
    const y = randData(rng, rows * N), h = randData(rng, rows * r), w = randData(rng, N * r);
    const alpha = 1.7;
    const want: number[] = [], tol: number[] = [];
    for (let i = 0; i < rows; i++) {
      for (let n = 0; n < N; n++) {
        let acc = 0, mag = 0;
        for (let k = 0; k < r; k++) {
          acc += h[i * r + k] * w[n * r + k];
          mag += Math.abs(h[i * r + k] * w[n * r + k]);
        }
        want.push(y[i * N + n] + alpha * acc);
        // f32 dot product of length r, scaled, plus one rounding of the sum (and of the scale
        // step when composed): 2·(r + 3)·u·(α·Σ|hw| + |y|).
        tol.push(2 * (r + 3) * U32 * (alpha * mag + Math.abs(y[i * N + n])) + 1e-30);
      }
    }
    const out = addMatmulInPlace(
      t(dev, y, [B, T, N]),
      t(dev, h, [B, T, r]),
      t(dev, w, [N, r]),
      alpha,
    );
    assert.deepEqual(out.shape, [B, T, N]);
    assertClose(await out.toArray(), want, tol, `addMatmulInPlace ${B}x${T}x${N} r${r}`);
  }
  assert.throws(
    () => addMatmulInPlace(t(dev, [1, 2], [1, 2]), t(dev, [1], [1, 1]), t(dev, [1, 2], [1, 2]), 1),
    /do not fit/,
  );
});

Deno.test(
  "matmul on WebGPU: up to 4 rows run as one matrix-vector dispatch, equal to float64",
  { sanitizeResources: false, sanitizeOps: false },
  async () => {
    const g = (await gpu()) as WebGpuBackend;
    const rng = new Rng(14);
    try {
      // K a multiple of 8 (whole words) or not, past the 256 columns a workgroup row covers; N
      // past the 8 rows (x · Wᵀ) and the 256 columns (x · W) of a workgroup.
      for (const [M, N, K] of [[1, 19, 1031], [2, 300, 72], [3, 1, 8], [4, 257, 2072]]) {
        for (const transB of [true, false]) {
          const withBias = M % 2 === 0;
          const a = randData(rng, M * K), b = randData(rng, K * N), bias = randData(rng, N);
          const ref = matmulRef(a, b, withBias ? bias : null, 1, M, N, K, false, transB, 0, 0);
          for (const mv of [true, false]) {
            g.matvecProducts = mv;
            const d0 = new Map(g.engine.dispatchesByKernel);
            const y = matmul(t(g, a, [M, K]), t(g, b, transB ? [N, K] : [K, N]), {
              transB,
              bias: withBias ? t(g, bias, [N]) : undefined,
            });
            const ran = [...g.engine.dispatchesByKernel].filter(([k, n]) => n > (d0.get(k) ?? 0));
            const what = `M${M} N${N} K${K} transB ${transB} matvec ${mv}`;
            assert.equal(ran.some(([k]) => k.startsWith("qmatvec:f32w")), mv, `${what}: ${ran}`);
            assertClose(await y.toArray(), ref.out, tol(ref.absDot, K), what);
          }
        }
      }
    } finally {
      g.matvecProducts = true;
    }
  },
);
