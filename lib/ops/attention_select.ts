/**
 * Which way causal self-attention runs, per shape and backend: the selection policy behind
 * `causalSelfAttention` / `causalSelfAttentionQkv`'s `"auto"` mode, kept apart from the ops (the
 * model is the WebGPU matmul's `MatmulSelector`).
 *
 * The candidates of a shape are the backend's fused kernel families that take its head width
 * (`Backend.attentionKernelFamilies`: on WebGPU the tiled FlashAttention-2-style kernels and the
 * row kernels) and the composed ops (batched matmuls + causal row softmax), when its [B·nh, T, T]
 * scores fit one storage. A shape runs with the tuned winner of its shape when there is one, else
 * the untuned default ({@link defaultAttentionPath}). `tuneAttention` (`attention_tune.ts`) times
 * the candidates once per shape on this adapter, fastest wins; {@link fastestAttentionPath} is
 * that decision as a pure function of the timings (tested with injected timings).
 *
 * The paths differ in rounding (within the attention tests' tolerances), so the choice moves a
 * run's numbers slightly: a run tunes after its first step only, records the choices in its
 * checkpoints ({@link attentionChoices}) and a resumed run applies them
 * ({@link setAttentionChoices}) instead of tuning again.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";

/** A way to run causal self-attention: a fused kernel family of the backend, or composed ops. */
export type AttentionPath = "tiled" | "rows" | "composed";

/** The paths, in the order ties are broken (the earlier wins). */
export const ATTENTION_PATHS: readonly AttentionPath[] = ["tiled", "rows", "composed"];

/** One attention shape: batch, heads, sequence length, head width. */
export interface AttentionShape {
  /** Batch. */
  B: number;
  /** Heads. */
  nHead: number;
  /** Sequence length. */
  T: number;
  /** Head width. */
  hd: number;
}

/** The key of a shape in the caches, `BxNHxTxHD` (as bench/attention.ts writes shapes). */
export function attentionShapeKey(s: AttentionShape): string {
  return `${s.B}x${s.nHead}x${s.T}x${s.hd}`;
}

/** The shape of a key made by {@link attentionShapeKey}; throws for anything else. */
export function parseAttentionShapeKey(key: string): AttentionShape {
  const v = key.split("x").map(Number);
  if (v.length !== 4 || v.some((x) => !Number.isInteger(x) || x < 1)) {
    throw new RangeError(`attention shape "${key}" is not BxNHxTxHD`);
  }
  return { B: v[0], nHead: v[1], T: v[2], hd: v[3] };
}

/**
 * Sequence length from which an untuned hardware GPU runs the composed path. The H200 run of
 * 2026-12-04 (bench/attention.ts) measured forward + backward at 8×12×1024×64: tiled 39.8–99.5
 * ms, composed 11.6 ms; at 8×6×128×32: tiled 0.53 ms, composed 1.19 ms. Between 128 and 1024 it
 * is unmeasured; tuning decides there (and everywhere else) once it has run.
 */
export const COMPOSED_FROM_T = 512;

/** The fused kernel families a backend offers at head width `hd`, default first. */
export function fusedFamilies(dev: Backend, hd: number): ("tiled" | "rows")[] {
  if (typeof dev.attention !== "function" || hd > (dev.attentionMaxHeadDim ?? 0)) return [];
  return dev.attentionKernelFamilies ? [...dev.attentionKernelFamilies(hd)] : ["rows"];
}

/** Whether the composed path's [B·nh, T, T] scores fit one storage of `dev` (and one dispatch). */
export function composedFits(dev: Backend, s: AttentionShape): boolean {
  return s.B * s.nHead <= 65535 && s.B * s.nHead * s.T * s.T * 4 <= dev.maxStorageBytes;
}

/**
 * The paths `dev` can run shape `s` with: its fused families (default first), then composed when
 * its scores fit. Never empty: composed is the fallback even where it does not fit (it then fails
 * with the storage-size error it always gave).
 */
export function attentionCandidates(dev: Backend, s: AttentionShape): AttentionPath[] {
  const out: AttentionPath[] = fusedFamilies(dev, s.hd);
  if (composedFits(dev, s) || out.length === 0) out.push("composed");
  return out;
}

/**
 * The untuned choice among `candidates`: on a hardware GPU, composed from
 * {@link COMPOSED_FROM_T} on (what the H200 measured), else the backend's default fused family;
 * on a software adapter (lavapipe, where the tiled kernels measured faster or within 15 % of
 * composed) and for short sequences the default fused family; composed where nothing is fused.
 */
export function defaultAttentionPath(
  candidates: readonly AttentionPath[],
  s: AttentionShape,
  software: boolean,
): AttentionPath {
  const fused = candidates.find((c) => c !== "composed");
  if (!fused) return "composed";
  if (!software && s.T >= COMPOSED_FROM_T && candidates.includes("composed")) return "composed";
  return fused;
}

/**
 * The fastest path of a tuning run: the least finite time among `candidates` (ties: the earlier
 * in {@link ATTENTION_PATHS}); null when none was timed (every run failed).
 */
export function fastestAttentionPath(
  ms: Partial<Record<AttentionPath, number>>,
  candidates: readonly AttentionPath[] = ATTENTION_PATHS,
): AttentionPath | null {
  let best: AttentionPath | null = null;
  for (const p of ATTENTION_PATHS) {
    const t = ms[p];
    if (!candidates.includes(p) || t === undefined || !Number.isFinite(t)) continue;
    if (best === null || t < ms[best]!) best = p;
  }
  return best;
}

/** The selection state of one backend: tuned winners and the shapes seen. */
interface State {
  tuned: Map<string, AttentionPath>;
  seen: Map<string, AttentionShape>;
}
const STATES = new WeakMap<Backend, State>();
function state(dev: Backend): State {
  let s = STATES.get(dev);
  if (!s) STATES.set(dev, s = { tuned: new Map(), seen: new Map() });
  return s;
}

/**
 * The path `dev` runs shape `s` with in `"auto"` mode: the tuned winner of the shape when it is
 * still a candidate, else {@link defaultAttentionPath}. Records the shape as seen.
 */
export function attentionPathFor(dev: Backend, s: AttentionShape): AttentionPath {
  const st = state(dev), key = attentionShapeKey(s);
  if (!st.seen.has(key)) st.seen.set(key, { B: s.B, nHead: s.nHead, T: s.T, hd: s.hd });
  const cands = attentionCandidates(dev, s);
  const t = st.tuned.get(key);
  if (t && cands.includes(t)) return t;
  return defaultAttentionPath(cands, s, dev.isSoftware ?? false);
}

/** Every shape {@link attentionPathFor} has been asked about on `dev` (first seen first). */
export function seenAttentionShapes(dev: Backend): AttentionShape[] {
  return [...state(dev).seen.values()];
}

/** Records `path` as the choice of shape `s` on `dev` (what tuning does). */
export function setAttentionChoice(dev: Backend, s: AttentionShape, path: AttentionPath): void {
  if (!ATTENTION_PATHS.includes(path)) {
    throw new RangeError(`attention path "${path}" is not one of ${ATTENTION_PATHS.join(", ")}`);
  }
  state(dev).tuned.set(attentionShapeKey(s), path);
}

/** The recorded choices of `dev`, by shape key: what a checkpoint saves. */
export function attentionChoices(dev: Backend): Record<string, AttentionPath> {
  return Object.fromEntries(state(dev).tuned);
}

/**
 * Applies recorded choices (a checkpoint's {@link attentionChoices}) on `dev`. Returns the keys
 * whose path `dev` cannot run (another adapter): those shapes take the default, and the run's
 * numbers may then differ slightly from the uninterrupted run.
 */
export function setAttentionChoices(dev: Backend, rec: Record<string, string>): string[] {
  const bad: string[] = [];
  for (const [key, path] of Object.entries(rec)) {
    const s = parseAttentionShapeKey(key);
    if (!attentionCandidates(dev, s).includes(path as AttentionPath)) {
      bad.push(`${key} ${path}`);
      continue;
    }
    setAttentionChoice(dev, s, path as AttentionPath);
  }
  return bad;
}

/** Forgets `dev`'s recorded choices (shapes go back to the default). */
export function clearAttentionChoices(dev: Backend): void {
  state(dev).tuned.clear();
}
