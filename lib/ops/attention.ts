/**
 * Causal multi-head self-attention: {@link causalSelfAttention} on separate q, k, v and
 * {@link causalSelfAttentionQkv} on a packed [B, T, 3C] projection (GPT-2's c_attn output).
 *
 * Each shape runs one of the paths its backend can take (`attention_select.ts`): a fused kernel
 * family of the backend (WebGPU: the tiled kernels of `kernels/attention_tiled.ts` or the row
 * kernels of `kernels/attention.ts`; one dispatch forward, two backward, no [T, T] matrices kept)
 * or the composed ops — permute, matmul, scale and a causal softmax, always on the CPU backend,
 * whose numerics the shipped model was trained with. In the `"auto"` mode the choice is the
 * shape's tuned winner (`tuneAttention`, `attention_tune.ts`) or the untuned default;
 * {@link setAttentionMode} forces a path for comparisons.
 *
 * @module
 */

import type { AttentionParams, Backend } from "../backend/backend.ts";
import { activeTape, record } from "../autograd/record.ts";
import { fmtShape, scope, Tensor } from "../tensor.ts";
import {
  attentionCandidates,
  type AttentionPath,
  attentionPathFor,
  type AttentionShape,
} from "./attention_select.ts";
import { scale } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { softmax } from "./nn.ts";
import { narrow, permute } from "./shape.ts";
import { needDtype, sameBackend } from "./util.ts";

/** {@link setAttentionMode}'s settings: `"auto"` or one forced {@link AttentionPath}. */
export type AttentionMode = "auto" | AttentionPath;

let mode: AttentionMode = "auto";

/**
 * `"auto"` (default): each shape runs its selected path (tuned winner, else the default; see
 * `attention_select.ts`); `"composed"`: always compose attention from the basic ops (the
 * reference; what the CPU backend runs); `"tiled"` / `"rows"`: that fused kernel family wherever
 * the backend can run it with the shape (else the `"auto"` choice). For comparisons and tuning.
 */
export function setAttentionMode(m: AttentionMode): void {
  if (!["auto", "tiled", "rows", "composed"].includes(m)) {
    throw new RangeError(`setAttentionMode: "${m}" is not "auto", "tiled", "rows" or "composed"`);
  }
  mode = m;
}

/** The current attention mode (see {@link setAttentionMode}). */
export function attentionMode(): AttentionMode {
  return mode;
}

/** The path shape `s` runs with on `dev` under the current mode. */
export function attentionPath(dev: Backend, s: AttentionShape): AttentionPath {
  if (mode === "composed") return "composed";
  if (mode !== "auto" && attentionCandidates(dev, s).includes(mode)) return mode;
  return attentionPathFor(dev, s);
}

function checkHeads(op: string, C: number, nHead: number): number {
  if (!Number.isInteger(nHead) || nHead < 1 || C % nHead !== 0) {
    throw new RangeError(`${op}: C=${C} is not divisible by nHead=${nHead}`);
  }
  return C / nHead;
}

/**
 * Causal multi-head self-attention of projected q, k, v: each [B, T, C] with C = nHead · hd.
 * Returns [B, T, C] = concat_h softmax(q_h k_hᵀ / √hd, causal) v_h.
 */
export function causalSelfAttention(q: Tensor, k: Tensor, v: Tensor, nHead: number): Tensor {
  sameBackend("causalSelfAttention", q, k, v);
  const shp = fmtShape(q.shape);
  if (q.ndim !== 3 || fmtShape(k.shape) !== shp || fmtShape(v.shape) !== shp) {
    throw new RangeError(
      `causalSelfAttention: q, k, v must share a [B, T, C] shape, got ${shp}, ${
        fmtShape(k.shape)
      }, ${fmtShape(v.shape)}`,
    );
  }
  for (const [n, t] of [["q", q], ["k", k], ["v", v]] as const) {
    needDtype("causalSelfAttention", t, "f32", n);
  }
  const [B, T, C] = q.shape;
  const hd = checkHeads("causalSelfAttention", C, nHead);
  // The fused backward hands each input its own gradient: repeated inputs take the composed path.
  const path = attentionPath(q.backend, { B, nHead, T, hd });
  if (path === "composed" || q === k || k === v || q === v) return composed(q, k, v, nHead);
  const p: AttentionParams = {
    B,
    T,
    nHead,
    hd,
    qOff: 0,
    kOff: 0,
    vOff: 0,
    rowStride: C,
    scale: 1 / Math.sqrt(hd),
    kernels: path,
  };
  return fusedOp(
    [q, k, v],
    p,
    (dqkv, needs) =>
      scope(() => [0, 1, 2].map((i) => (needs[i] ? narrow(dqkv, 2, i * C, C) : null))),
  );
}

/**
 * Causal self-attention of a packed projection qkv: [B, T, 3C] (q, k, v side by side in each
 * row, as GPT-2's c_attn makes them) → [B, T, C]. Same result as narrowing qkv into q, k, v and
 * calling {@link causalSelfAttention}, without the copies when the attention runs fused.
 */
export function causalSelfAttentionQkv(qkv: Tensor, nHead: number): Tensor {
  needDtype("causalSelfAttentionQkv", qkv, "f32", "qkv");
  if (qkv.ndim !== 3 || qkv.shape[2] % 3 !== 0) {
    throw new RangeError(
      `causalSelfAttentionQkv: qkv must be [B, T, 3C], got ${fmtShape(qkv.shape)}`,
    );
  }
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  const hd = checkHeads("causalSelfAttentionQkv", C, nHead);
  const path = attentionPath(qkv.backend, { B, nHead, T, hd });
  if (path === "composed") {
    return scope(() =>
      causalSelfAttention(
        narrow(qkv, 2, 0, C),
        narrow(qkv, 2, C, C),
        narrow(qkv, 2, 2 * C, C),
        nHead,
      )
    );
  }
  const p: AttentionParams = {
    B,
    T,
    nHead,
    hd,
    qOff: 0,
    kOff: C,
    vOff: 2 * C,
    rowStride: C3,
    scale: 1 / Math.sqrt(hd),
    kernels: path,
  };
  return fusedOp([qkv, qkv, qkv], p, (dqkv) => [dqkv]);
}

/**
 * Runs the backend's fused attention on q, k, v (possibly one tensor thrice) and records its
 * backward; `grads` turns the packed [B, T, 3C] gradient into the inputs' gradients.
 */
function fusedOp(
  qkv: Tensor[],
  p: AttentionParams,
  grads: (dqkv: Tensor, needs: boolean[]) => (Tensor | null)[],
): Tensor {
  const dev = qkv[0].backend;
  const [q, k, v] = qkv.map((t) => t.storage);
  const r = dev.attention!(q, k, v, p);
  const y = new Tensor(dev, r.y, [p.B, p.T, p.nHead * p.hd], "f32");
  const lse = new Tensor(dev, r.lse, [p.B, p.nHead, p.T], "f32");
  const inputs = [...new Set(qkv)];
  const tape = activeTape();
  if (!tape || !inputs.some((t) => tape.needsGrad(t))) {
    lse.dispose();
    return y;
  }
  // lse rides along as an input that needs no gradient, so scopes keep it for the backward.
  return record(y, [...inputs, lse], (g, needs) => {
    const d = dev.attentionBackward!(q, k, v, y.storage, lse.storage, g.storage, p);
    const dqkv = new Tensor(dev, d, [p.B, p.T, 3 * p.nHead * p.hd], "f32");
    const out = grads(dqkv, needs);
    if (!out.includes(dqkv)) dqkv.dispose();
    return [...out, null];
  });
}

/** The composed reference: heads permuted out, q·kᵀ/√hd, causal softmax, ·v, heads merged. */
function composed(q: Tensor, k: Tensor, v: Tensor, nHead: number): Tensor {
  const [B, T, C] = q.shape;
  const hd = C / nHead;
  return scope(() => {
    // [B, T, C] -> [B, nh, T, hd]
    const heads = (x: Tensor) => permute(x.reshape([B, T, nHead, hd]), [0, 2, 1, 3]);
    const qh = heads(q), kh = heads(k), vh = heads(v);
    const att = scale(matmul(qh, kh, { transB: true }), 1 / Math.sqrt(hd)); // [B, nh, T, T]
    const pr = softmax(att, { causal: true });
    const y = matmul(pr, vh); // [B, nh, T, hd]
    return permute(y, [0, 2, 1, 3]).reshape([B, T, C]);
  });
}

/**
 * Query positions that see every key (no mask), as in generation with a key/value cache, where
 * all cached keys are in the new position's past: q: [B, Tq, C], k, v: [B, Tk, C] → [B, Tq, C],
 * softmax(q_h k_hᵀ / √hd) v_h per head. Composed of the basic ops on every backend.
 */
export function attendAll(q: Tensor, k: Tensor, v: Tensor, nHead: number): Tensor {
  sameBackend("attendAll", q, k, v);
  const [B, Tq, C] = q.shape, Tk = k.shape[1];
  if (
    q.ndim !== 3 || fmtShape(k.shape) !== fmtShape(v.shape) || k.shape[0] !== B ||
    k.shape[2] !== C
  ) {
    throw new RangeError(
      `attendAll: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} ` +
        `should be [B, Tq, C], [B, Tk, C], [B, Tk, C]`,
    );
  }
  const hd = checkHeads("attendAll", C, nHead);
  return scope(() => {
    const heads = (t: Tensor, T: number) => permute(t.reshape([B, T, nHead, hd]), [0, 2, 1, 3]);
    const att = scale(matmul(heads(q, Tq), heads(k, Tk), { transB: true }), 1 / Math.sqrt(hd));
    const y = matmul(softmax(att), heads(v, Tk)); // [B, nh, Tq, hd]
    return permute(y, [0, 2, 1, 3]).reshape([B, Tq, C]);
  });
}
