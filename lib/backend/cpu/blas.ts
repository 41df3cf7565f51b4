/**
 * The CPU backend's fast matrix product: `cblas_sgemm` from OpenBLAS (Debian's
 * `libopenblas0-pthread`) through Deno FFI, 50–100× the plain TypeScript loop.
 *
 * The library is opened on first use. When it cannot be (no `--allow-ffi` permission, library not
 * installed, or `LORALAB_BLAS=0`), {@link blasAvailable} is false, the CPU backend keeps its
 * TypeScript loops, and {@link blasStatus} says why.
 *
 * Determinism: for a fixed thread count OpenBLAS splits the output (never the K sum) between
 * threads and packs operands into aligned buffers, so the same inputs give bit-identical outputs
 * run to run (checked in `tests/backend/blas.test.ts`). Outputs do differ in the last bits from
 * `matmulJs` (other summation order) and may differ between thread counts or CPU models.
 *
 * @module
 */

import type { MatmulParams } from "../backend.ts";
import { checkMatmulOut } from "./matmul_out.ts";

const SYMBOLS = {
  cblas_sgemm: {
    // order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
    nonblocking: false,
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
} as const;

type BlasLib = Deno.DynamicLibrary<typeof SYMBOLS>;

/** What {@link blasStatus} reports. */
export interface BlasStatus {
  /** True when `sgemm` runs through the native library. */
  available: boolean;
  /** `"OpenBLAS"` or `"BLAS"` (a library without OpenBLAS's extras); empty when unavailable. */
  library: string;
  /** The path or name that was opened; empty when unavailable. */
  path: string;
  /** Threads OpenBLAS uses (1 for other libraries, 0 when unavailable). */
  threads: number;
  /** Why BLAS is not used (e.g. `"libopenblas0-pthread not installed"`); empty when it is. */
  reason: string;
}

// Debian's multiarch directories first (so `--allow-ffi=/usr/lib` suffices), then bare names for
// the dynamic loader's search path (needs unscoped `--allow-ffi`).
const NAMES = ["libopenblas.so.0", "libopenblas.so", "libblas.so.3"];
const CANDIDATES = [
  ...NAMES.map((n) => `/usr/lib/${Deno.build.arch}-linux-gnu/${n}`),
  ...NAMES,
];

let lib: BlasLib | null = null;
let status: BlasStatus | null = null;

function unavailable(reason: string): BlasStatus {
  return { available: false, library: "", path: "", threads: 0, reason };
}

/** Reads `LORALAB_BLAS` when env access is granted (never prompts, never throws). */
function disabledByEnv(): boolean {
  const perm = Deno.permissions.querySync({ name: "env", variable: "LORALAB_BLAS" });
  return perm.state === "granted" && Deno.env.get("LORALAB_BLAS") === "0";
}

function load(): BlasStatus {
  if (disabledByEnv()) return unavailable("disabled by LORALAB_BLAS=0");
  const allowed = CANDIDATES.filter((path) =>
    Deno.permissions.querySync({ name: "ffi", path }).state === "granted"
  );
  if (allowed.length === 0) return unavailable("no --allow-ffi permission");
  for (const path of allowed) {
    try {
      lib = Deno.dlopen(path, SYMBOLS);
    } catch {
      continue; // not there (or not loadable): try the next name
    }
    const s = lib.symbols;
    const openblas = s.openblas_get_num_threads !== null;
    const threads = openblas ? s.openblas_get_num_threads!() : 1;
    return { available: true, library: openblas ? "OpenBLAS" : "BLAS", path, threads, reason: "" };
  }
  return unavailable("libopenblas0-pthread not installed");
}

/** Where BLAS stands: opens the library on first call. */
export function blasStatus(): BlasStatus {
  status ??= load();
  return { ...status };
}

/** True when matrix products on the CPU go through native BLAS. */
export function blasAvailable(): boolean {
  return blasStatus().available;
}

/**
 * One line for logs: `"OpenBLAS, 2 threads (/usr/lib/x86_64-linux-gnu/libopenblas.so.0)"`, or
 * `"unavailable: <reason>"`.
 */
export function blasInfo(): string {
  const s = blasStatus();
  return s.available
    ? `${s.library}, ${s.threads} thread${s.threads === 1 ? "" : "s"} (${s.path})`
    : `unavailable: ${s.reason}`;
}

/**
 * Sets OpenBLAS's thread count (results are deterministic for a fixed count, but may change in
 * the last bits when it changes). No-op for other BLAS libraries or when BLAS is unavailable.
 */
export function setBlasThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`blas: threads must be ≥ 1, got ${n}`);
  if (!blasAvailable() || !lib!.symbols.openblas_set_num_threads) return;
  lib!.symbols.openblas_set_num_threads(n);
  status!.threads = lib!.symbols.openblas_get_num_threads!();
}

/** Elements a row-major `rows × cols` matrix with leading dimension `ld` spans. */
function span(rows: number, cols: number, ld: number): number {
  return rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
}

/**
 * Row-major `C = alpha · op(A) · op(B) + beta · C` (`cblas_sgemm`), where op(A) is [M, K] and
 * op(B) is [K, N]; `A` is stored [K, M] when `transA`, `B` [N, K] when `transB`. The arrays are
 * passed by pointer from their `byteOffset` (use `subarray` to address a batch element); their
 * lengths are checked against the leading dimensions first, so a bad call throws instead of
 * reading out of bounds. Throws when BLAS is unavailable.
 */
export function sgemm(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: Float32Array,
  lda: number,
  B: Float32Array,
  ldb: number,
  beta: number,
  C: Float32Array,
  ldc: number,
): void {
  if (!blasAvailable()) throw new Error(`blas: ${blasInfo()}`);
  const [ar, ac] = transA ? [K, M] : [M, K];
  const [br, bc] = transB ? [N, K] : [K, N];
  if (
    lda < Math.max(1, ac) || ldb < Math.max(1, bc) || ldc < Math.max(1, N) ||
    A.length < span(ar, ac, lda) || B.length < span(br, bc, ldb) || C.length < span(M, N, ldc)
  ) {
    throw new RangeError(
      `blas: sgemm M${M} N${N} K${K} tA${transA} tB${transB} lda${lda} ldb${ldb} ldc${ldc} ` +
        `does not fit arrays of ${A.length}, ${B.length}, ${C.length}`,
    );
  }
  if (M === 0 || N === 0) return;
  const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;
  lib!.symbols.cblas_sgemm(
    ROW_MAJOR,
    transA ? TRANS : NO_TRANS,
    transB ? TRANS : NO_TRANS,
    M,
    N,
    K,
    alpha,
    A,
    lda,
    B,
    ldb,
    beta,
    C,
    ldc,
  );
}

/**
 * {@link sgemm} over a batch with the CPU backend's {@link MatmulParams} (stride 0 broadcasts an
 * operand), `alpha` passed through; the bias is written into (or, when accumulating, added to)
 * each output row first and accumulated with beta = 1. Writes into `out` when given, else into a
 * new array. Throws when BLAS is unavailable.
 */
export function matmulBlas(
  a: Float32Array,
  b: Float32Array,
  bias: Float32Array | null,
  p: MatmulParams,
  out?: Float32Array,
): Float32Array {
  const { batch, M, N, K, transA, transB, strideA, strideB } = p;
  const alpha = p.alpha ?? 1, acc = p.accumulate ?? false;
  checkMatmulOut(p, out);
  const dst = out ?? new Float32Array(batch * M * N);
  if (bias) {
    const b0 = bias.subarray(0, N);
    for (let r = 0; r < batch * M; r++) {
      if (acc) {
        for (let j = 0; j < N; j++) dst[r * N + j] += b0[j];
      } else dst.set(b0, r * N);
    }
  } else if (out && !acc) dst.fill(0, 0, batch * M * N);
  if (K === 0) return dst; // empty sums: only the bias (and previous output)
  const lda = transA ? M : K, ldb = transB ? K : N;
  for (let z = 0; z < batch; z++) {
    sgemm(
      transA,
      transB,
      M,
      N,
      K,
      alpha,
      a.subarray(z * strideA),
      lda,
      b.subarray(z * strideB),
      ldb,
      bias || acc ? 1 : 0,
      dst.subarray(z * M * N, (z + 1) * M * N),
      N,
    );
  }
  return dst;
}
