/**
 * Choosing among the f32 matmul variants (`kernels/matmul.ts`) of the WebGPU backend.
 *
 * The backend (its `MatmulSelector`, `matmul_select.ts`) picks, in order:
 * 1. a forced variant: `LORALAB_MATMUL_VARIANT=<name>` (read once when the backend is made) or
 *    `WebGpuBackend.forceMatmulVariant(name)`;
 * 2. the winner that `WebGpuBackend.tuneMatmul()` measured for the product's shape bucket;
 * 3. the heuristic {@link heuristicVariant}: `t128` when the output has many 128×128 tiles,
 *    else `t64`.
 *
 * A bucket ({@link matmulBucket}) groups shapes whose rows (batch·M), columns and depth round to
 * the same powers of two and that have the same transpositions. Tuning only runs on hardware
 * adapters: on software ones (lavapipe) timings say nothing about a GPU, so `tuneMatmul` returns
 * without measuring unless asked with `force`.
 *
 * @module
 */

import type { MatmulParams } from "../backend.ts";
import { MATMUL_VARIANTS, type MatmulVariant, matmulVariant } from "./kernels/matmul.ts";

/** The environment variable that forces one variant. */
export const MATMUL_VARIANT_ENV = "LORALAB_MATMUL_VARIANT";

/**
 * Outputs with at least this many 128×128 tiles use `t128` by default: about two workgroups per
 * streaming multiprocessor on a large GPU, so the bigger tile still fills the device.
 */
export const BIG_TILES = 256;

/** A product shape to tune for (batch 1 and no transposition unless given). */
export interface MatmulShape {
  /** Rows of op(A) and of the output. */
  M: number;
  /** Columns of op(B) and of the output. */
  N: number;
  /** Inner dimension. */
  K: number;
  /** Output matrices (default 1). */
  batch?: number;
  /** A stored [K, M] (default false). */
  transA?: boolean;
  /** B stored [N, K] (default false). */
  transB?: boolean;
}

/**
 * Shapes `tuneMatmul()` measures when given none: a 4096² square and transformer training
 * products (x·Wᵀ forward, dX = dY·W and dW = dYᵀ·X backward) at 2048 tokens, widths 768 / 3072.
 */
export const DEFAULT_TUNE_SHAPES: readonly MatmulShape[] = [
  { M: 4096, N: 4096, K: 4096 },
  { M: 2048, N: 768, K: 768, transB: true },
  { M: 2048, N: 3072, K: 768, transB: true },
  { M: 2048, N: 768, K: 3072, transB: true },
  { M: 2048, N: 768, K: 3072 },
  { M: 3072, N: 768, K: 2048, transA: true },
];

/** What `tuneMatmul` measured for one shape. */
export interface MatmulTuneResult {
  /** The bucket the winner is recorded under. */
  bucket: string;
  /** The shape measured. */
  shape: Required<MatmulShape>;
  /** Milliseconds per product, by variant name. */
  ms: Record<string, number>;
  /** The fastest variant. */
  winner: string;
}

/** Fills in a shape's defaults. */
export function fullShape(s: MatmulShape): Required<MatmulShape> {
  return { batch: 1, transA: false, transB: false, ...s };
}

/**
 * The tuning bucket of a product: `m<log2 rows>n<log2 N>k<log2 K>t<transA><transB>`, each log2
 * rounded to the nearest integer (rows counts every batch element).
 */
export function matmulBucket(
  p: Pick<MatmulParams, "batch" | "M" | "N" | "K" | "transA" | "transB">,
): string {
  const l = (x: number) => Math.round(Math.log2(Math.max(1, x)));
  return `m${l(p.batch * p.M)}n${l(p.N)}k${l(p.K)}t${+p.transA}${+p.transB}`;
}

/**
 * The default variant of a product: `t128` when its output spans at least {@link BIG_TILES}
 * 128×128 tiles and `fits(t128)`, else `t64`. On a software adapter (`software`: a CPU runs the
 * workgroups a few at a time, so filling the device needs no tile count) `t128db` whenever both
 * output sides reach 64 — the fastest variant on lavapipe at the shipped model's shapes.
 */
export function heuristicVariant(
  p: Pick<MatmulParams, "batch" | "M" | "N">,
  fits: (v: MatmulVariant) => boolean,
  software = false,
): MatmulVariant {
  if (software) {
    const db = matmulVariant("t128db");
    return p.M >= 64 && p.N >= 64 && fits(db) ? db : matmulVariant("t64");
  }
  const tiles = p.batch * Math.ceil(p.M / 128) * Math.ceil(p.N / 128);
  const big = matmulVariant("t128");
  return tiles >= BIG_TILES && fits(big) ? big : matmulVariant("t64");
}

/**
 * The variant named by `LORALAB_MATMUL_VARIANT`, or null when it is unset, empty or not readable
 * (no `--allow-env`; never prompts). Throws on an unknown name, listing the valid ones.
 */
export function variantFromEnv(): MatmulVariant | null {
  const perm = Deno.permissions.querySync({ name: "env", variable: MATMUL_VARIANT_ENV });
  if (perm.state !== "granted") return null;
  const v = Deno.env.get(MATMUL_VARIANT_ENV);
  if (v === undefined || v === "") return null;
  try {
    return matmulVariant(v);
  } catch (e) {
    throw new Error(`${MATMUL_VARIANT_ENV}=${v}: ${(e as Error).message}`);
  }
}

/** Every variant name, for messages and benches. */
export function variantNames(): string[] {
  return MATMUL_VARIANTS.map((v) => v.name);
}
