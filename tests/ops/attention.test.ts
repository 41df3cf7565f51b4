// The fused attention kernels (WGSL: the row kernels of lib/backend/webgpu/kernels/attention.ts
// and the tiled ones of attention_tiled.ts) against their CPU twins (lib/backend/cpu/attention.ts,
// float64 math), and the fused op against the composed one.
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
import type { WebGpuBackend } from "../../lib/backend/webgpu/mod.ts";
import type { AttentionParams } from "../../lib/backend/backend.ts";
import { attentionBackwardCpu, attentionForwardCpu } from "../../lib/backend/cpu/attention.ts";
import type { Kernel } from "../../lib/backend/webgpu/engine.ts";
import {
  ATTENTION_KERNELS_ENV,
  attentionKernelsFromEnv,
  attentionTileConfig,
  attentionTiledBackwardKVKernel,
  attentionTiledBackwardQKernel,
  attentionTiledForwardKernel,
  dkvBytes,
  dqBytes,
  fwdBytes,
} from "../../lib/backend/webgpu/kernels/attention_tiled.ts";
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

// The kernel families of the WebGPU backend: the row kernels, and the tiled kernels at several
// workgroup-memory budgets, which pick different tile shapes (attentionTileConfig): together
// every Br/Bc shape of both preference lists runs on some case below (asserted).
const FAMILIES: {
  name: string;
  kernels: "auto" | "rows";
  bytes: number | null;
  threads: 64 | 128;
}[] = [
  { name: "rows", kernels: "rows", bytes: null, threads: 128 },
  { name: "tiled", kernels: "auto", bytes: null, threads: 128 },
  { name: "tiled 16 KiB", kernels: "auto", bytes: 16384, threads: 128 },
  { name: "tiled 12 KiB", kernels: "auto", bytes: 12288, threads: 128 },
  { name: "tiled, 64 threads", kernels: "auto", bytes: null, threads: 64 },
  { name: "tiled 12 KiB, 64 threads", kernels: "auto", bytes: 12288, threads: 64 },
];

Deno.test(
  "attention kernels (rows and every tile shape) match their CPU twins, packed and separate",
  opts,
  async () => {
    const dev = await gpu() as WebGpuBackend;
    const rng = new Rng(7);
    // [B, T, nh, hd, packed]: T across the 16…64-row blocks and the key tiles; odd head widths.
    const cases: [number, number, number, number, boolean][] = [
      [1, 1, 1, 4, true],
      [2, 7, 3, 5, false],
      [1, 65, 2, 32, true],
      [1, 130, 1, 64, false],
      [2, 33, 2, 17, true],
      [1, 9, 1, 128, true],
      [1, 100, 1, 40, false],
    ];
    const shapes = new Set<string>();
    try {
      for (const [B, T, nh, hd, packed] of cases) {
        const C = nh * hd;
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
        const [q, k, v] = packed
          ? [qkv!, qkv!, qkv!]
          : [mk(B * T * C), mk(B * T * C), mk(B * T * C)];
        const dy = mk(B * T * C);
        const want = attentionForwardCpu(q, k, v, p);
        const wantD = attentionBackwardCpu(q, k, v, want.y, dy, p);
        const up = (a: Float32Array) => dev.upload("f32", a);
        const [sq, sk, sv] = packed ? [up(q), null, null] : [up(q), up(k), up(v)];
        const sdy = up(dy);
        for (const fam of FAMILIES) {
          dev.attentionKernels = fam.kernels;
          dev.attentionTileBytes = fam.bytes;
          dev.attentionThreads = fam.threads;
          const cfg = dev.attentionTiles(hd);
          if (fam.kernels === "rows") assert.equal(cfg, null);
          if (cfg) {
            assert.equal(cfg.threads, fam.threads);
            shapes.add(`rows ${cfg.fwd.br}/${cfg.fwd.bc}`).add(`rows ${cfg.dq.br}/${cfg.dq.bc}`);
            shapes.add(`keys ${cfg.dkv.br}/${cfg.dkv.bc}`);
            shapes.add(`threads ${cfg.threads}`);
          }
          const what = `B${B} T${T} nh${nh} hd${hd} ${
            packed ? "packed" : "separate"
          }, ${fam.name} (${
            cfg
              ? `fwd ${cfg.fwd.br}/${cfg.fwd.bc} dq ${cfg.dq.br}/${cfg.dq.bc} dkv ${cfg.dkv.br}/${cfg.dkv.bc}`
              : "rows"
          })`;
          const r = dev.attention!(sq, sk ?? sq, sv ?? sq, p);
          const y = await dev.read(r.y, "f32", B * T * C);
          const lse = await dev.read(r.lse, "f32", B * nh * T);
          assertClose(y, want.y, tol(want.y), `${what}: y`);
          assertClose(lse, want.lse, tol(want.lse), `${what}: lse`);
          const d = dev.attentionBackward!(sq, sk ?? sq, sv ?? sq, r.y, r.lse, sdy, p);
          const got = await dev.read(d, "f32", B * T * 3 * C);
          assertClose(got, wantD, tol(wantD), `${what}: dq, dk, dv`);
          for (const s of [r.y, r.lse, d]) dev.free(s);
        }
        for (const s of [sq, sk, sv, sdy]) if (s) dev.free(s);
      }
    } finally {
      dev.attentionKernels = "auto";
      dev.attentionTileBytes = null;
      dev.attentionThreads = null;
    }
    // Every tile shape this adapter can choose for these cases and budgets ran (the row lists
    // for forward and dq, the key list for dkv). Which shapes that is depends on the adapter's
    // workgroup memory: derived from attentionTileConfig, not listed for one adapter.
    const max = dev.engine.device.limits.maxComputeWorkgroupStorageSize;
    const reachable = new Set<string>();
    for (const [, , , hd] of cases) {
      for (const fam of FAMILIES.filter((f) => f.kernels === "auto")) {
        const cfg = attentionTileConfig(hd, Math.min(max, fam.bytes ?? max), fam.threads);
        if (!cfg) continue;
        reachable.add(`rows ${cfg.fwd.br}/${cfg.fwd.bc}`).add(`rows ${cfg.dq.br}/${cfg.dq.bc}`);
        reachable.add(`keys ${cfg.dkv.br}/${cfg.dkv.bc}`).add(`threads ${cfg.threads}`);
      }
    }
    for (const s of reachable) assert.ok(shapes.has(s), `no case ran ${s}: ${[...shapes]}`);
    // On 32 KiB of workgroup memory (lavapipe) that is every shape of both preference lists.
    if (max === 32768) {
      const all = [
        ...["64/32", "32/32", "32/16", "16/16"].map((x) => `rows ${x}`),
        ...["32/32", "16/32", "16/16"].map((x) => `keys ${x}`),
        "threads 64",
        "threads 128",
      ];
      for (const s of all) assert.ok(reachable.has(s), `${s} not reachable on 32 KiB`);
    }
  },
);

Deno.test("tiled attention: tile choice and workgroup bytes match the WGSL", () => {
  // The byte formulas choose the tiles; they must count what the kernels declare, or a device
  // with exactly that limit would reject the pipeline.
  const declared = (code: string) => {
    let n = 0;
    for (const m of code.matchAll(/var<workgroup> \w+: array<(f32|vec4<f32>), (\d+)>/g)) {
      n += Number(m[2]) * (m[1] === "f32" ? 4 : 16);
    }
    return n;
  };
  for (const hd of [4, 17, 32, 40, 64, 96, 128]) {
    for (const lim of [12288, 16384, 24576, 32768, 49152]) {
      const cfg = attentionTileConfig(hd, lim, hd % 2 ? 64 : 128);
      if (!cfg) continue;
      assert.equal(cfg.hp, Math.ceil(hd / 32) * 32);
      const kernels: [Kernel, number][] = [
        [attentionTiledForwardKernel(hd, cfg), fwdBytes(cfg.hp, cfg.fwd)],
        [attentionTiledBackwardQKernel(hd, cfg), dqBytes(cfg.hp, cfg.dq)],
        [attentionTiledBackwardKVKernel(hd, cfg), dkvBytes(cfg.hp, cfg.dkv)],
      ];
      for (const [k, bytes] of kernels) {
        assert.equal(declared(k.code), bytes, `${k.key}: declared vs counted bytes`);
        assert.ok(bytes <= lim, `${k.key}: ${bytes} > ${lim}`);
      }
    }
  }
  // hd = 64 on a 32 KiB device (lavapipe) and a 48 KiB one (the H200 seen in shared/gpu).
  assert.deepEqual(attentionTileConfig(64, 32768), {
    threads: 128,
    hp: 64,
    fwd: { br: 32, bc: 32 },
    dq: { br: 32, bc: 16 },
    dkv: { br: 16, bc: 32 },
  });
  assert.deepEqual(attentionTileConfig(64, 49152)?.dkv, { br: 32, bc: 32 });
  assert.equal(attentionTileConfig(129, 1 << 20), null);
  assert.equal(attentionTileConfig(64, 8192), null);
  assert.throws(() => attentionTileConfig(64, 32768, 96 as 64), /96 threads \(64 or 128\)/);
});

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
    assert.throws(
      () => setAttentionMode("fast" as "auto"),
      /not "auto", "tiled", "rows" or "composed"/,
    );
  },
);

Deno.test("LORALAB_ATTENTION_KERNELS: auto or rows, anything else is an error", () => {
  const old = Deno.env.get(ATTENTION_KERNELS_ENV);
  try {
    for (const [v, want] of [["", "auto"], ["auto", "auto"], ["rows", "rows"]] as const) {
      Deno.env.set(ATTENTION_KERNELS_ENV, v);
      assert.equal(attentionKernelsFromEnv(), want);
    }
    Deno.env.set(ATTENTION_KERNELS_ENV, "tiles");
    assert.throws(() => attentionKernelsFromEnv(), /LORALAB_ATTENTION_KERNELS=tiles: expected/);
  } finally {
    if (old === undefined) Deno.env.delete(ATTENTION_KERNELS_ENV);
    else Deno.env.set(ATTENTION_KERNELS_ENV, old);
  }
});
