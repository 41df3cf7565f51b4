/**
 * CPU twins of the fused causal self-attention kernels (`lib/backend/webgpu/kernels/attention.ts`):
 * the textbook two-pass softmax in float64, rounded to float32 on the way out. The CPU backend
 * itself does not use them (it composes attention from matmul and softmax, whose numerics the
 * shipped model was trained with); tests compare the WGSL kernels against these.
 *
 * @module
 */

import type { AttentionParams } from "../backend.ts";

/** Element index of row t, head h, column 0 of an operand at `off`. */
function rowAt(p: AttentionParams, off: number, b: number, t: number, h: number): number {
  return off + (b * p.T + t) * p.rowStride + h * p.hd;
}

/** Scores s_ij = scale · q_i·k_j (j ≤ i) and probabilities of one query row, in float64. */
function probs(
  q: Float32Array,
  k: Float32Array,
  p: AttentionParams,
  b: number,
  h: number,
  i: number,
): { pr: Float64Array; lse: number } {
  const s = new Float64Array(i + 1);
  const qi = rowAt(p, p.qOff, b, i, h);
  let mx = -Infinity;
  for (let j = 0; j <= i; j++) {
    const kj = rowAt(p, p.kOff, b, j, h);
    let acc = 0;
    for (let d = 0; d < p.hd; d++) acc += q[qi + d] * k[kj + d];
    s[j] = acc * p.scale;
    mx = Math.max(mx, s[j]);
  }
  let sum = 0;
  for (let j = 0; j <= i; j++) sum += Math.exp(s[j] - mx);
  const pr = new Float64Array(i + 1);
  for (let j = 0; j <= i; j++) pr[j] = Math.exp(s[j] - mx) / sum;
  return { pr, lse: mx + Math.log(sum) };
}

/** Forward twin: y [B, T, nHead·hd] and lse [B, nHead, T]. */
export function attentionForwardCpu(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  p: AttentionParams,
): { y: Float32Array; lse: Float32Array } {
  const { B, T, nHead, hd } = p;
  const C = nHead * hd;
  const y = new Float32Array(B * T * C);
  const lse = new Float32Array(B * nHead * T);
  const o = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < T; i++) {
        const { pr, lse: l } = probs(q, k, p, b, h, i);
        o.fill(0);
        for (let j = 0; j <= i; j++) {
          const vj = rowAt(p, p.vOff, b, j, h);
          for (let d = 0; d < hd; d++) o[d] += pr[j] * v[vj + d];
        }
        y.set(o, (b * T + i) * C + h * hd);
        lse[(b * nHead + h) * T + i] = l;
      }
    }
  }
  return { y, lse };
}

/**
 * Backward twin: dq, dk, dv packed as [B, T, 3·nHead·hd]. With P the probabilities,
 * dP = dy·vᵀ, dS = P ∘ (dP − rowsum(dy ∘ y)), dq = scale·dS·k, dk = scale·dSᵀ·q, dv = Pᵀ·dy.
 * Recomputes P from q and k (it does not trust a saved lse).
 */
export function attentionBackwardCpu(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  y: Float32Array,
  dy: Float32Array,
  p: AttentionParams,
): Float32Array {
  const { B, T, nHead, hd } = p;
  const C = nHead * hd;
  const out = new Float64Array(B * T * 3 * C);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < T; i++) {
        const { pr } = probs(q, k, p, b, h, i);
        const yi = (b * T + i) * C + h * hd;
        let D = 0;
        for (let d = 0; d < hd; d++) D += dy[yi + d] * y[yi + d];
        const qi = rowAt(p, p.qOff, b, i, h);
        const dqi = (b * T + i) * 3 * C + h * hd;
        for (let j = 0; j <= i; j++) {
          const kj = rowAt(p, p.kOff, b, j, h), vj = rowAt(p, p.vOff, b, j, h);
          let dp = 0;
          for (let d = 0; d < hd; d++) dp += dy[yi + d] * v[vj + d];
          const ds = pr[j] * (dp - D) * p.scale;
          const dkj = (b * T + j) * 3 * C + C + h * hd;
          for (let d = 0; d < hd; d++) {
            out[dqi + d] += ds * k[kj + d];
            out[dkj + d] += ds * q[qi + d];
            out[dkj + C + d] += pr[j] * dy[yi + d];
          }
        }
      }
    }
  }
  return new Float32Array(out);
}
