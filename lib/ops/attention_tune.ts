/**
 * Tuning of the attention path (`attention_select.ts`): times each candidate path of a shape —
 * forward + backward of a packed [B, T, 3C] qkv, as a training step runs it — once on this
 * adapter and records the fastest for the shape, as the WebGPU matmul tuning does for its
 * variants. On a software adapter it measures nothing unless forced (CPU timings would mislead).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { Tape } from "../autograd/tape.ts";
import { scope, Tensor } from "../tensor.ts";
import { attentionMode, causalSelfAttentionQkv, setAttentionMode } from "./attention.ts";
import {
  attentionCandidates,
  type AttentionPath,
  attentionPathFor,
  type AttentionShape,
  attentionShapeKey,
  fastestAttentionPath,
  seenAttentionShapes,
  setAttentionChoice,
} from "./attention_select.ts";
import { mul } from "./elementwise.ts";
import { sum } from "./reduce.ts";

/** What {@link tuneAttention} measured for one shape. */
export interface AttentionTuneResult {
  /** The shape's key, `BxNHxTxHD`. */
  shape: string;
  /** Milliseconds per forward + backward of each candidate (NaN: the run failed). */
  ms: Partial<Record<AttentionPath, number>>;
  /** The path chosen before tuning (the default, or an earlier winner). */
  before: AttentionPath;
  /** The fastest candidate, now recorded for the shape. */
  winner: AttentionPath;
}

/** Options of {@link tuneAttention}. */
export interface AttentionTuneOptions {
  /** Measure even on a software adapter. Default false. */
  force?: boolean;
  /** Milliseconds spent per path and shape, after one warm-up call. Default 100. */
  minMs?: number;
  /**
   * Times one path on one shape, ms per forward + backward (default {@link timeAttentionPath});
   * tests inject timings here.
   */
  time?: (dev: Backend, path: AttentionPath, s: AttentionShape, minMs: number) => Promise<number>;
}

/**
 * Forward + backward of `causalSelfAttentionQkv` on random data of shape `s` with `path` forced:
 * ms per call, after one warm-up, over at least `minMs`.
 */
export async function timeAttentionPath(
  dev: Backend,
  path: AttentionPath,
  s: AttentionShape,
  minMs: number,
): Promise<number> {
  const C = s.nHead * s.hd;
  const prev = attentionMode();
  const qkv = Tensor.randn([s.B, s.T, 3 * C], { device: dev, seed: 1 });
  const w = Tensor.randn([s.B, s.T, C], { device: dev, seed: 2 });
  setAttentionMode(path);
  try {
    const once = () =>
      scope(() => {
        const tape = new Tape();
        tape.watch(qkv);
        const y = tape.run(() =>
          sum(mul(causalSelfAttentionQkv(qkv, s.nHead), w).reshape([-1]), 0)
        );
        tape.backward(y).get(qkv)!.dispose();
      });
    once(); // compile and warm up
    await dev.sync();
    let reps = 0, per = 1;
    const t0 = performance.now();
    while (performance.now() - t0 < minMs) {
      for (let i = 0; i < per; i++) once();
      await dev.sync();
      reps += per;
      per = Math.min(per * 2, 16);
    }
    return (performance.now() - t0) / reps;
  } finally {
    setAttentionMode(prev);
    qkv.dispose();
    w.dispose();
  }
}

/**
 * Times every candidate path of each shape (default: the shapes seen so far on `dev`, e.g. after
 * a training step) and records the fastest for the shape. Returns what it measured: [] on a
 * software adapter unless `force`, and for shapes with a single candidate (nothing to choose).
 * A path whose run throws (a driver rejecting a pipeline, memory) is timed as NaN and never wins.
 */
export async function tuneAttention(
  dev: Backend,
  shapes: readonly AttentionShape[] = seenAttentionShapes(dev),
  opts: AttentionTuneOptions = {},
): Promise<AttentionTuneResult[]> {
  if ((dev.isSoftware ?? false) && !opts.force) return [];
  const minMs = opts.minMs ?? 100;
  const time = opts.time ?? timeAttentionPath;
  const out: AttentionTuneResult[] = [];
  for (const s of shapes) {
    const cands = attentionCandidates(dev, s);
    if (cands.length < 2) continue;
    const before = attentionPathFor(dev, s);
    const ms: Partial<Record<AttentionPath, number>> = {};
    for (const p of cands) {
      try {
        ms[p] = await time(dev, p, s, minMs);
      } catch {
        await dev.sync().catch(() => {});
        ms[p] = NaN;
      }
    }
    const winner = fastestAttentionPath(ms, cands);
    if (winner === null) continue; // every run failed: keep the default
    setAttentionChoice(dev, s, winner);
    out.push({ shape: attentionShapeKey(s), ms, before, winner });
  }
  return out;
}

/** One line per tuned shape, e.g. `8x12x1024x64: composed (tiled 39.8 ms, rows 79.4, composed 11.6)`. */
export function formatAttentionTuning(rs: readonly AttentionTuneResult[]): string[] {
  return rs.map((r) => {
    const t = Object.entries(r.ms).map(([p, v], i) =>
      `${p} ${Number.isFinite(v) ? v!.toFixed(1) : "failed"}${i === 0 ? " ms" : ""}`
    );
    return `${r.shape}: ${r.winner} (${t.join(", ")})`;
  });
}
