// The fused attention kernels (WGSL, lib/backend/webgpu/kernels/attention.ts) against their CPU
// twins (lib/backend/cpu/attention.ts, float64 math), and the fused op against the composed one.
import assert from "node:assert/strict";
import {
  causalSelfAttention,
  causalSelfAttentionQkv,
  cpu,
  mul,
  Rng,
  setAttentionMode,
  sum,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import type { AttentionParams } from "../../lib/backend/backend.ts";
import { attentionBackwardCpu, attentionForwardCpu } from "../../lib/backend/cpu/attention.ts";
import { assertClose, gpu, randData } from "../harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

// Tolerance: the kernels accumulate hd products and up to T probabilities in float32 with an
// online (per-tile rescaled) softmax, the twin in float64. Each score carries ≲ hd·u·Σ|q||k|
// error and exp() a few ulp, so outputs (convex mixes of v) and gradients (sums of ≤ T terms)
// are off by ≲ (hd + T)·u·scale ≈ 1e-5 relative to the largest magnitude for these sizes;
// we allow 2e-5 · (1 + max|want|).
function tol(want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(want[i]));
  return 2e-5 * (1 + m);
}

Deno.test(
  "attention kernels match their CPU twins (packed and separate layouts)",
  opts,
  async () => {
    const dev = await gpu();
    const rng = new Rng(7);
    // [B, T, nh, hd, packed]: T across the 64-row workgroup and the key tiles; odd head widths.
    const cases: [number, number, number, number, boolean][] = [
      [1, 1, 1, 4, true],
      [2, 7, 3, 5, false],
      [1, 65, 2, 32, true],
      [1, 130, 1, 64, false],
      [2, 33, 2, 17, true],
      [1, 9, 1, 128, true],
    ];
    for (const [B, T, nh, hd, packed] of cases) {
      const C = nh * hd;
      const what = `B${B} T${T} nh${nh} hd${hd} ${packed ? "packed" : "separate"}`;
      const p: AttentionParams = packed
        ? {
          B,
          T,
          nHead: nh,
          hd,
          qOff: 0,
          kOff: C,
          vOff: 2 * C,
          rowStride: 3 * C,
          scale: 1 / Math.sqrt(hd),
        }
        : {
          B,
          T,
          nHead: nh,
          hd,
          qOff: 0,
          kOff: 0,
          vOff: 0,
          rowStride: C,
          scale: 1 / Math.sqrt(hd),
        };
      const mk = (n: number) => new Float32Array(randData(rng, n));
      const qkv = packed ? mk(B * T * 3 * C) : null;
      const [q, k, v] = packed ? [qkv!, qkv!, qkv!] : [mk(B * T * C), mk(B * T * C), mk(B * T * C)];
      const dy = mk(B * T * C);
      const want = attentionForwardCpu(q, k, v, p);
      const wantD = attentionBackwardCpu(q, k, v, want.y, dy, p);

      const up = (a: Float32Array) => dev.upload("f32", a);
      const [sq, sk, sv] = packed ? [up(q), null, null] : [up(q), up(k), up(v)];
      const r = dev.attention!(sq, sk ?? sq, sv ?? sq, p);
      const y = await dev.read(r.y, "f32", B * T * C);
      const lse = await dev.read(r.lse, "f32", B * nh * T);
      assertClose(y, want.y, tol(want.y), `${what}: y`);
      assertClose(lse, want.lse, tol(want.lse), `${what}: lse`);
      const sdy = up(dy);
      const d = dev.attentionBackward!(sq, sk ?? sq, sv ?? sq, r.y, r.lse, sdy, p);
      const got = await dev.read(d, "f32", B * T * 3 * C);
      assertClose(got, wantD, tol(wantD), `${what}: dq, dk, dv`);
      for (const s of [sq, sk, sv, r.y, r.lse, sdy, d]) if (s) dev.free(s);
    }
  },
);

Deno.test("the CPU twin agrees with the composed attention on the CPU backend", async () => {
  const rng = new Rng(8);
  const [B, T, nh, hd] = [2, 11, 3, 4], C = nh * hd;
  const qkv = randData(rng, B * T * 3 * C);
  const y = causalSelfAttentionQkv(Tensor.fromArray(qkv, [B, T, 3 * C], { device: cpu }), nh);
  const p = { B, T, nHead: nh, hd, qOff: 0, kOff: C, vOff: 2 * C, rowStride: 3 * C, scale: 0.5 };
  const f = new Float32Array(qkv);
  const want = attentionForwardCpu(f, f, f, p).y;
  assertClose(await y.toArray(), want, tol(want), "composed (CPU backend) vs twin");
});

Deno.test("fused and composed attention agree on WebGPU, values and gradients", opts, async () => {
  const dev = await gpu();
  const rng = new Rng(9);
  const [B, T, nh, hd] = [2, 70, 2, 16], C = nh * hd;
  const data = randData(rng, B * T * 3 * C);
  const w = randData(rng, B * T * C);
  const run = async (mode: "auto" | "composed") => {
    setAttentionMode(mode);
    try {
      const qkv = Tensor.fromArray(data, [B, T, 3 * C], { device: dev });
      const wt = Tensor.fromArray(w, [B, T, C], { device: dev });
      const tape = new Tape();
      tape.watch(qkv);
      let y: Tensor | null = null;
      const loss = tape.run(() => {
        y = causalSelfAttentionQkv(qkv, nh);
        return sum(mul(y, wt).reshape([B * T * C]), 0);
      });
      const g = tape.backward(loss).get(qkv)!;
      return { y: await y!.toArray(), g: await g.toArray(), n: dev.kind };
    } finally {
      setAttentionMode("auto");
    }
  };
  const fused = await run("auto");
  const comp = await run("composed");
  assertClose(fused.y, comp.y, tol(comp.y), "y fused vs composed");
  assertClose(fused.g, comp.g, tol(comp.g), "dqkv fused vs composed");
});

Deno.test(
  "fused attention: separate q, k, v get their own gradients; shapes are checked",
  opts,
  async () => {
    const dev = await gpu();
    const rng = new Rng(10);
    const [B, T, nh, hd] = [1, 6, 2, 3], C = nh * hd;
    const mk = () => Tensor.fromArray(randData(rng, B * T * C), [B, T, C], { device: dev });
    const [q, k, v] = [mk(), mk(), mk()];
    const grads = () => {
      const tape = new Tape();
      tape.watch(q, k, v);
      const loss = tape.run(() => sum(causalSelfAttention(q, k, v, nh).reshape([B * T * C]), 0));
      const g = tape.backward(loss);
      return Promise.all([q, k, v].map((t) => g.get(t)!.toArray()));
    };
    const fused = await grads();
    setAttentionMode("composed");
    const comp = await grads().finally(() => setAttentionMode("auto"));
    for (let i = 0; i < 3; i++) assertClose(fused[i], comp[i], tol(comp[i]), `d${"qkv"[i]}`);
    assert.throws(
      () => causalSelfAttentionQkv(Tensor.zeros([1, 6, 7], { device: dev }), 1),
      /\[B, T, 3C\]/,
    );
    assert.throws(() => causalSelfAttentionQkv(mk(), 4), /not divisible/);
    assert.throws(() => setAttentionMode("fast" as "auto"), /not "auto" or "composed"/);
  },
);
