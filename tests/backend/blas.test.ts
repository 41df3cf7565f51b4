import assert from "node:assert/strict";
import { cpu, Rng } from "../../lib/mod.ts";
import {
  blasAvailable,
  blasInfo,
  blasStatus,
  matmulBlas,
  sgemm,
} from "../../lib/backend/cpu/blas.ts";
import { matmulJs } from "../../lib/backend/cpu/kernels.ts";
import type { MatmulParams } from "../../lib/backend/backend.ts";
import { assertClose, randData, randInt, U32 } from "../harness.ts";
import { matmulRef } from "../ref.ts";

// BLAS tests never skip: `task test` installs libopenblas0-pthread (tools/setup.sh) and grants
// --allow-ffi, so an unavailable library is a failure, named with its reason.
function requireBlas(): void {
  assert.ok(blasAvailable(), `BLAS should be available under task test: ${blasInfo()}`);
}

// Tolerance as in tests/ops/matmul.test.ts: an f32 dot product of K terms plus bias, in any
// summation order (BLAS blocks and uses FMA), is within γ_{K+1}·Σ|a_k b_k|; we allow
// 2·(K+2)·u·Σ|a_k b_k| plus 1e-30 for exact zeros.
function tol(absDot: number[], K: number): number[] {
  return absDot.map((s) => 2 * (K + 2) * U32 * s + 1e-30);
}

function params(p: Partial<MatmulParams> & { M: number; N: number; K: number }): MatmulParams {
  return { batch: 1, transA: false, transB: false, strideA: 0, strideB: 0, ...p };
}

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** A copy of `x` starting `off` floats into a fresh buffer (varies alignment). */
function shifted(x: Float32Array, off: number): Float32Array {
  const buf = new Float32Array(x.length + off);
  buf.set(x, off);
  return buf.subarray(off);
}

Deno.test("blas: OpenBLAS is loaded and the CPU backend says so", () => {
  requireBlas();
  const s = blasStatus();
  assert.equal(s.library, "OpenBLAS");
  assert.ok(s.threads >= 1);
  assert.equal(cpu.description, `CPU (OpenBLAS, ${s.threads} thread${s.threads === 1 ? "" : "s"})`);
});

Deno.test("blas: random 2-D shapes, every transposition, with and without bias", () => {
  requireBlas();
  const rng = new Rng(21);
  const dims = [1, 2, 3, 7, 16, 17, 31, 64, 65, 100, 129];
  for (let trial = 0; trial < 40; trial++) {
    const M = dims[rng.int(dims.length)], N = dims[rng.int(dims.length)];
    const K = dims[rng.int(dims.length)];
    const transA = (trial & 1) === 1, transB = (trial & 2) === 2, withBias = (trial & 4) === 4;
    const a = randData(rng, M * K), b = randData(rng, K * N), bias = randData(rng, N);
    const ref = matmulRef(a, b, withBias ? bias : null, 1, M, N, K, transA, transB, 0, 0);
    const p = params({ M, N, K, transA, transB });
    const args = [
      new Float32Array(a),
      new Float32Array(b),
      withBias ? new Float32Array(bias) : null,
      p,
    ] as const;
    const what = `M${M} N${N} K${K} tA${transA} tB${transB} bias${withBias}`;
    assertClose(matmulBlas(...args), ref.out, tol(ref.absDot, K), `blas ${what}`);
    assertClose(matmulJs(...args), ref.out, tol(ref.absDot, K), `js ${what}`);
  }
});

Deno.test("blas: batched, stride-0 broadcast on either side, bias", () => {
  requireBlas();
  const rng = new Rng(22);
  for (let trial = 0; trial < 12; trial++) {
    const B = randInt(rng, 1, 4), M = randInt(rng, 1, 40), N = randInt(rng, 1, 40);
    const K = randInt(rng, 1, 40);
    const mode = trial % 3; // 0: both batched, 1: b shared, 2: a shared
    const transA = rng.int(2) === 1, transB = rng.int(2) === 1, withBias = trial % 2 === 0;
    const strideA = mode !== 2 ? M * K : 0, strideB = mode !== 1 ? K * N : 0;
    const a = randData(rng, (strideA ? B : 1) * M * K),
      b = randData(rng, (strideB ? B : 1) * K * N);
    const bias = withBias ? randData(rng, N) : null;
    const ref = matmulRef(a, b, bias, B, M, N, K, transA, transB, strideA, strideB);
    const p = params({ batch: B, M, N, K, transA, transB, strideA, strideB });
    const fb = bias ? new Float32Array(bias) : null;
    const got = matmulBlas(new Float32Array(a), new Float32Array(b), fb, p);
    assertClose(got, ref.out, tol(ref.absDot, K), `batched mode ${mode} B${B}`);
  }
});

Deno.test("blas: K = 0 gives the bias, M or N = 0 gives an empty output", () => {
  requireBlas();
  const bias = new Float32Array([1.5, -2, 3]);
  const out = matmulBlas(
    new Float32Array(0),
    new Float32Array(0),
    bias,
    params({ M: 2, N: 3, K: 0 }),
  );
  assert.deepEqual([...out], [1.5, -2, 3, 1.5, -2, 3]);
  const z = matmulBlas(
    new Float32Array(0),
    new Float32Array(0),
    null,
    params({ M: 2, N: 3, K: 0 }),
  );
  assert.deepEqual([...z], [0, 0, 0, 0, 0, 0]);
  assert.equal(
    matmulBlas(new Float32Array(0), new Float32Array(4), null, params({ M: 0, N: 2, K: 2 })).length,
    0,
  );
});

Deno.test("blas: sgemm honours leading dimensions, alpha and beta, and checks lengths", () => {
  requireBlas();
  // A is the left 2×2 block of a 2×3 array (lda 3), B = I (ldb 2), C = 10 + 2·A·B (ldc 4).
  const A = new Float32Array([1, 2, 99, 3, 4, 99]);
  const B = new Float32Array([1, 0, 0, 1]);
  const C = new Float32Array([5, 5, 7, 7, 5, 5, 7, 7]);
  sgemm(false, false, 2, 2, 2, 2, A, 3, B, 2, 2, C, 4);
  assert.deepEqual([...C], [12, 14, 7, 7, 16, 18, 7, 7]);
  assert.throws(() => sgemm(false, false, 2, 2, 2, 1, A.subarray(2), 3, B, 2, 0, C, 4), RangeError);
  assert.throws(() => sgemm(false, false, 2, 2, 2, 1, A, 1, B, 2, 0, C, 4), RangeError);
});

Deno.test("blas: bit-identical outputs run to run (20 repeats, varied alignment)", () => {
  requireBlas();
  const rng = new Rng(23);
  const shapes = [[1, 1, 1], [3, 5, 7], [17, 33, 65], [64, 64, 64], [128, 300, 257], [
    256,
    256,
    512,
  ]];
  for (const [M, N, K] of shapes) {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
      const a = new Float32Array(randData(rng, M * K)), b = new Float32Array(randData(rng, K * N));
      const bias = new Float32Array(randData(rng, N));
      const p = params({ M, N, K, transA, transB });
      const first = bits(matmulBlas(a, b, bias, p));
      for (let r = 1; r < 20; r++) {
        const got = bits(matmulBlas(shifted(a, r % 5), shifted(b, r % 3), bias, p));
        assert.deepEqual(got, first, `M${M} N${N} K${K} tA${transA} tB${transB} repeat ${r}`);
      }
    }
  }
});

/** Runs a script in a fresh Deno process with the given flags and environment. */
async function run(flags: string[], env: Record<string, string>, code: string): Promise<string> {
  const p = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, "-"],
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(code));
  await w.close();
  const r = await p.output();
  const err = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 0, err);
  return new TextDecoder().decode(r.stdout).trim();
}

const probe = `import { cpu, matmul, Tensor } from "${
  new URL("../../lib/mod.ts", import.meta.url).href
}";
const a = Tensor.randn([33, 17], { device: cpu, seed: 1 }), b = Tensor.randn([17, 9], { device: cpu, seed: 2 });
const y = await matmul(a, b).toArray();
console.log(cpu.description + "|" + y.slice(0, 4).join(","));`;

Deno.test("blas: LORALAB_BLAS=0 or no --allow-ffi falls back to the TypeScript loop", async () => {
  const off = await run(
    ["--allow-read", "--allow-env", "--allow-ffi"],
    { LORALAB_BLAS: "0" },
    probe,
  );
  assert.match(off, /^CPU \(TypeScript loops: disabled by LORALAB_BLAS=0\)\|/);
  const noFfi = await run(["--allow-read", "--allow-env"], {}, probe);
  assert.match(noFfi, /^CPU \(TypeScript loops: no --allow-ffi permission\)\|/);
  assert.equal(noFfi.split("|")[1], off.split("|")[1]); // both are matmulJs
  const scoped = await run(["--allow-read", "--allow-env", "--allow-ffi=/usr/lib"], {}, probe);
  assert.match(scoped, /^CPU \(OpenBLAS, \d+ threads?\)\|/);
});
