/**
 * The matmul selection policy of the WebGPU backend, kept apart from its op dispatch: which f32
 * matmul variant (`kernels/matmul.ts`) each product runs with, and the timing runs that decide
 * it. {@link MatmulSelector} holds the state (the forced variant, the tuned winner of each shape
 * bucket, one shape of every bucket seen); the heuristics and buckets are `matmul_tuning.ts`.
 * `WebGpuBackend` keeps thin methods (`tuneMatmul`, `forceMatmulVariant`, `matmulVariantFor`,
 * `seenMatmulShapes`, …) that delegate here.
 *
 * @module
 */

import type { MatmulParams } from "../backend.ts";
import type { GpuEngine } from "./engine.ts";
import {
  MATMUL_VARIANTS,
  matmulGroups,
  matmulKernel,
  matmulParams,
  matmulSpec,
  matmulThreads,
  type MatmulVariant,
  matmulVariant,
  matmulWorkgroupBytes,
} from "./kernels/matmul.ts";
import {
  DEFAULT_TUNE_SHAPES,
  fullShape,
  heuristicVariant,
  matmulBucket,
  type MatmulShape,
  type MatmulTuneResult,
  variantFromEnv,
} from "./matmul_tuning.ts";

/** Deterministic values in [-1, 1) for timing runs (a 32-bit LCG). */
function noise(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x / 2 ** 31 - 1;
  }
  return out;
}

/** Options of {@link MatmulSelector.tune}. */
export interface MatmulTuneOptions {
  /** Measure even on a software adapter. Default false. */
  force?: boolean;
  /** Milliseconds spent per variant and shape. Default 50. */
  minMs?: number;
}

/**
 * Picks the matmul variant of each product on one engine: the forced one, else the tuned winner
 * of its bucket, else the shape heuristic (`matmul_tuning.ts`).
 */
export class MatmulSelector {
  readonly #engine: GpuEngine;
  #forced: MatmulVariant | null;
  readonly #tuned = new Map<string, MatmulVariant>();
  readonly #seen = new Map<string, MatmulShape>();

  /** A selector for `engine`, forced to `LORALAB_MATMUL_VARIANT` when that is set. */
  constructor(engine: GpuEngine) {
    this.#engine = engine;
    this.#forced = variantFromEnv();
  }

  /** Whether a variant's workgroup fits the device's limits. */
  fits(v: MatmulVariant): boolean {
    const l = this.#engine.device.limits;
    return matmulWorkgroupBytes(v) <= l.maxComputeWorkgroupStorageSize &&
      matmulThreads(v) <= l.maxComputeInvocationsPerWorkgroup &&
      v.bn / v.tn <= l.maxComputeWorkgroupSizeX && v.bm / v.tm <= l.maxComputeWorkgroupSizeY;
  }

  /** The name of the forced variant, or null. */
  get forcedName(): string | null {
    return this.#forced?.name ?? null;
  }

  /**
   * Forces one variant for every product (null: back to tuned / heuristic choice). Throws for an
   * unknown name or one that does not fit the device.
   */
  force(name: string | null): void {
    if (name === null) {
      this.#forced = null;
      return;
    }
    const v = matmulVariant(name);
    if (!this.fits(v)) {
      throw new Error(
        `webgpu matmul: variant ${name} exceeds the limits of ${this.#engine.description}`,
      );
    }
    this.#forced = v;
  }

  /**
   * The variant a product runs with: the forced one, else the tuned winner of its bucket, else
   * the shape heuristic. Records the product's bucket as seen.
   */
  variantFor(p: MatmulParams): MatmulVariant {
    const bucket = matmulBucket(p);
    if (!this.#seen.has(bucket)) {
      this.#seen.set(bucket, {
        M: p.M,
        N: p.N,
        K: p.K,
        batch: p.batch,
        transA: p.transA,
        transB: p.transB,
      });
    }
    if (this.#forced) {
      if (!this.fits(this.#forced)) {
        throw new Error(
          `webgpu matmul: forced variant ${this.#forced.name} exceeds the limits of ` +
            this.#engine.description,
        );
      }
      return this.#forced;
    }
    return this.#tuned.get(bucket) ??
      heuristicVariant(p, (v) => this.fits(v), this.#engine.isSoftware);
  }

  /** One shape of every bucket {@link variantFor} has been asked about (first seen). */
  seenShapes(): MatmulShape[] {
    return [...this.#seen.values()];
  }

  /**
   * Times every variant that fits the device on each shape and records the fastest for the
   * shape's bucket. On a software adapter it measures nothing and returns [] unless `force`.
   * Returns what it measured.
   */
  async tune(
    shapes: readonly MatmulShape[] = DEFAULT_TUNE_SHAPES,
    opts: MatmulTuneOptions = {},
  ): Promise<MatmulTuneResult[]> {
    const engine = this.#engine;
    if (engine.isSoftware && !opts.force) return [];
    const minMs = opts.minMs ?? 50;
    const results: MatmulTuneResult[] = [];
    const upload = (data: Float32Array) => {
      const b = engine.alloc(data.length * 4);
      engine.write(b, data);
      return b;
    };
    const dummy = engine.alloc(4); // the unused bias binding
    for (const s0 of shapes) {
      const s = fullShape(s0);
      const p: MatmulParams = {
        ...s,
        strideA: s.M * s.K,
        strideB: s.K * s.N,
      };
      const a = upload(noise(s.batch * s.M * s.K, 1));
      const b = upload(noise(s.batch * s.K * s.N, 2));
      const o = engine.alloc(s.batch * s.M * s.N * 4);
      const ms: Record<string, number> = {};
      let best: MatmulVariant | null = null;
      for (const v of MATMUL_VARIANTS) {
        if (!this.fits(v)) continue;
        const once = () =>
          engine.run(
            matmulKernel(v, matmulSpec(p)),
            [a, b, dummy, o],
            matmulParams({ ...p, hasBias: false, alpha: 1, accumulate: false }),
            matmulGroups(v, p),
          );
        once(); // compile and warm up
        await engine.sync();
        let reps = 0, per = 1;
        const t0 = performance.now();
        while (performance.now() - t0 < minMs) {
          for (let i = 0; i < per; i++) once();
          await engine.sync();
          reps += per;
          per = Math.min(per * 2, 64);
        }
        ms[v.name] = (performance.now() - t0) / reps;
        if (!best || ms[v.name] < ms[best.name]) best = v;
      }
      engine.release(a);
      engine.release(b);
      engine.release(o);
      const bucket = matmulBucket(p);
      this.#tuned.set(bucket, best!);
      results.push({ bucket, shape: s, ms, winner: best!.name });
    }
    engine.release(dummy);
    return results;
  }

  /** Forgets every tuned winner (products fall back to the heuristic). */
  clearTuning(): void {
    this.#tuned.clear();
  }
}
