// The attention path selection (lib/ops/attention_select.ts, attention_tune.ts): the decision
// with injected timings (no real timing decides anything here), the untuned default, the cache,
// checkpointed choices, and on WebGPU that each path the selection can pick gives the same
// attention as the others within the attention tests' tolerance.
import assert from "node:assert/strict";
import {
  attentionCandidates,
  attentionChoices,
  attentionMode,
  type AttentionPath,
  attentionPath,
  attentionPathFor,
  type AttentionShape,
  attentionShapeKey,
  type Backend,
  causalSelfAttentionQkv,
  clearAttentionChoices,
  COMPOSED_FROM_T,
  defaultAttentionPath,
  fastestAttentionPath,
  formatAttentionTuning,
  mul,
  parseAttentionShapeKey,
  Rng,
  seenAttentionShapes,
  setAttentionChoices,
  setAttentionMode,
  sum,
  Tape,
  Tensor,
  timeAttentionPath,
  tuneAttention,
} from "../../lib/mod.ts";
import type { WebGpuBackend } from "../../lib/backend/webgpu/mod.ts";
import { assertClose, gpu, randData } from "../harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** A backend stand-in with the attention capabilities only (selection never computes). */
function fakeBackend(o: {
  software?: boolean;
  families?: ("tiled" | "rows")[];
  maxStorageBytes?: number;
}): Backend {
  let syncs = 0;
  return {
    kind: "webgpu",
    isSoftware: o.software ?? false,
    maxStorageBytes: o.maxStorageBytes ?? 2 ** 31,
    attention: () => {
      throw new Error("not computed");
    },
    attentionMaxHeadDim: 128,
    attentionKernelFamilies: () => o.families ?? ["tiled", "rows"],
    sync: () => {
      syncs++;
      return Promise.resolve();
    },
    get syncs() {
      return syncs;
    },
  } as unknown as Backend;
}

const GPT2: AttentionShape = { B: 8, nHead: 12, T: 1024, hd: 64 };
const SHIPPED: AttentionShape = { B: 8, nHead: 6, T: 128, hd: 32 };

Deno.test("fastestAttentionPath: least finite time among the candidates, ties to the earlier", () => {
  assert.equal(fastestAttentionPath({ tiled: 39.8, rows: 79.4, composed: 11.6 }), "composed");
  assert.equal(fastestAttentionPath({ tiled: 0.53, rows: 0.9, composed: 1.19 }), "tiled");
  assert.equal(fastestAttentionPath({ tiled: 2, rows: 2, composed: 2 }), "tiled");
  assert.equal(fastestAttentionPath({ tiled: NaN, rows: 3, composed: Infinity }), "rows");
  assert.equal(fastestAttentionPath({ tiled: 1, composed: 2 }, ["rows", "composed"]), "composed");
  assert.equal(fastestAttentionPath({ tiled: NaN }), null);
  assert.equal(fastestAttentionPath({}), null);
});

Deno.test("the untuned default: composed for long sequences on hardware, fused otherwise", () => {
  const all: AttentionPath[] = ["tiled", "rows", "composed"];
  assert.equal(defaultAttentionPath(all, GPT2, false), "composed");
  assert.equal(defaultAttentionPath(all, { ...GPT2, T: COMPOSED_FROM_T - 1 }, false), "tiled");
  assert.equal(defaultAttentionPath(all, SHIPPED, false), "tiled");
  assert.equal(defaultAttentionPath(all, GPT2, true), "tiled"); // lavapipe: as measured there
  assert.equal(defaultAttentionPath(["rows", "composed"], SHIPPED, false), "rows");
  assert.equal(defaultAttentionPath(["tiled", "rows"], GPT2, false), "tiled"); // scores too big
  assert.equal(defaultAttentionPath(["composed"], GPT2, false), "composed");
});

Deno.test("candidates: fused families of the head width, composed when its scores fit", () => {
  const hw = fakeBackend({});
  assert.deepEqual(attentionCandidates(hw, GPT2), ["tiled", "rows", "composed"]);
  assert.deepEqual(attentionCandidates(hw, { ...GPT2, hd: 256 }), ["composed"]);
  const small = fakeBackend({ maxStorageBytes: 128 * 2 ** 20 }); // lavapipe's 128 MiB
  assert.deepEqual(attentionCandidates(small, GPT2), ["tiled", "rows"]); // 8·12·1024² floats
  assert.deepEqual(attentionCandidates(small, SHIPPED), ["tiled", "rows", "composed"]);
  assert.deepEqual(attentionCandidates(fakeBackend({ families: ["rows"] }), SHIPPED), [
    "rows",
    "composed",
  ]);
  const cpuLike = { maxStorageBytes: Infinity } as unknown as Backend;
  assert.deepEqual(attentionCandidates(cpuLike, GPT2), ["composed"]);
  assert.equal(attentionPathFor(cpuLike, GPT2), "composed");
  assert.deepEqual(parseAttentionShapeKey(attentionShapeKey(GPT2)), GPT2);
  assert.throws(() => parseAttentionShapeKey("8x12x1024"), /not BxNHxTxHD/);
});

Deno.test("tuneAttention with injected timings: times each candidate once, caches the winner", async () => {
  const dev = fakeBackend({});
  assert.equal(attentionPathFor(dev, GPT2), "composed"); // untuned default, and seen
  assert.equal(attentionPathFor(dev, SHIPPED), "tiled");
  assert.deepEqual(seenAttentionShapes(dev), [GPT2, SHIPPED]);
  // Timings as if a future fused kernel beat composed at T = 1024, and rows won the short shape.
  const table: Record<string, Record<AttentionPath, number>> = {
    [attentionShapeKey(GPT2)]: { tiled: 5.5, rows: 79.4, composed: 11.6 },
    [attentionShapeKey(SHIPPED)]: { tiled: 0.6, rows: 0.5, composed: 1.19 },
  };
  const calls: string[] = [];
  const time = (_: Backend, p: AttentionPath, s: AttentionShape) => {
    calls.push(`${attentionShapeKey(s)} ${p}`);
    return Promise.resolve(table[attentionShapeKey(s)][p]);
  };
  const rs = await tuneAttention(dev, undefined, { time });
  assert.deepEqual(calls, [
    "8x12x1024x64 tiled",
    "8x12x1024x64 rows",
    "8x12x1024x64 composed",
    "8x6x128x32 tiled",
    "8x6x128x32 rows",
    "8x6x128x32 composed",
  ]);
  assert.deepEqual(rs.map((r) => [r.shape, r.before, r.winner]), [
    ["8x12x1024x64", "composed", "tiled"],
    ["8x6x128x32", "tiled", "rows"],
  ]);
  assert.equal(attentionPathFor(dev, GPT2), "tiled");
  assert.equal(attentionPathFor(dev, SHIPPED), "rows");
  assert.deepEqual(attentionChoices(dev), { "8x12x1024x64": "tiled", "8x6x128x32": "rows" });
  assert.equal(
    formatAttentionTuning(rs)[0],
    "8x12x1024x64: tiled (tiled 5.5 ms, rows 79.4, composed 11.6)",
  );
  // A forced mode wins over the tuned choice where the shape can take it.
  setAttentionMode("composed");
  try {
    assert.equal(attentionPath(dev, GPT2), "composed");
    setAttentionMode("rows");
    assert.equal(attentionPath(dev, GPT2), "rows");
  } finally {
    setAttentionMode("auto");
  }
  assert.equal(attentionPath(dev, GPT2), "tiled");
  clearAttentionChoices(dev);
  assert.equal(attentionPathFor(dev, GPT2), "composed");
});

Deno.test("tuneAttention: nothing on a software adapter unless forced; failed runs never win", async () => {
  const sw = fakeBackend({ software: true });
  const time = () => Promise.resolve(1);
  assert.deepEqual(await tuneAttention(sw, [GPT2], { time }), []);
  assert.equal(attentionPathFor(sw, GPT2), "tiled");
  const forced = await tuneAttention(sw, [GPT2], {
    force: true,
    time: (_, p) => (p === "tiled" ? Promise.reject(new Error("pipeline rejected")) : time()),
  });
  assert.equal(forced[0].winner, "rows");
  assert.ok(Number.isNaN(forced[0].ms.tiled!));
  // One candidate: nothing to choose, nothing timed.
  const one = fakeBackend({ families: [], maxStorageBytes: 2 ** 40 });
  assert.deepEqual(
    await tuneAttention(one, [GPT2], { time: () => Promise.reject(new Error("timed")) }),
    [],
  );
  // Every run failing keeps the default.
  const hw = fakeBackend({});
  assert.deepEqual(
    await tuneAttention(hw, [SHIPPED], { time: () => Promise.reject(new Error("no")) }),
    [],
  );
  assert.equal(attentionPathFor(hw, SHIPPED), "tiled");
});

Deno.test("checkpointed attention choices are applied on resume; unusable ones are reported", () => {
  const dev = fakeBackend({ families: ["rows"] });
  const bad = setAttentionChoices(dev, { "8x6x128x32": "composed", "8x12x1024x64": "tiled" });
  assert.deepEqual(bad, ["8x12x1024x64 tiled"]);
  assert.equal(attentionPathFor(dev, SHIPPED), "composed");
  assert.equal(attentionPathFor(dev, GPT2), "composed"); // the default here
  assert.deepEqual(attentionChoices(dev), { "8x6x128x32": "composed" });
  assert.throws(() => setAttentionMode("fast" as "auto"), /not "auto", "tiled", "rows"/);
});

Deno.test("WebGPU: every path the selection can pick gives the same attention", opts, async () => {
  const dev = (await gpu()) as WebGpuBackend;
  const rng = new Rng(11);
  const s: AttentionShape = { B: 2, nHead: 2, T: 70, hd: 16 };
  const C = s.nHead * s.hd;
  const data = randData(rng, s.B * s.T * 3 * C), w = randData(rng, s.B * s.T * C);
  const cands = attentionCandidates(dev, s);
  assert.deepEqual(cands, ["tiled", "rows", "composed"]);
  const run = async () => {
    const qkv = Tensor.fromArray(data, [s.B, s.T, 3 * C], { device: dev });
    const wt = Tensor.fromArray(w, [s.B, s.T, C], { device: dev });
    const tape = new Tape();
    tape.watch(qkv);
    let y: Tensor | null = null;
    const k0 = new Map(dev.engine.dispatchesByKernel);
    const loss = tape.run(() => {
      y = causalSelfAttentionQkv(qkv, s.nHead);
      return sum(mul(y, wt).reshape([-1]), 0);
    });
    const g = tape.backward(loss).get(qkv)!;
    const [yh, gh] = await Tensor.readAll([y!, g]);
    const ran = [...dev.engine.dispatchesByKernel].filter(([k, v]) =>
      k.startsWith("attn") && v > (k0.get(k) ?? 0)
    ).map(([k]) => k.split(":")[0]).sort();
    for (const t of [qkv, wt, y!, g, loss]) t.dispose();
    return { y: yh, g: gh, ran };
  };
  const KERNELS: Record<AttentionPath, string[]> = {
    tiled: ["attn_tiled_bwd_kv", "attn_tiled_bwd_q", "attn_tiled_fwd"],
    rows: ["attn_bwd_kv", "attn_bwd_q", "attn_fwd"],
    composed: [],
  };
  clearAttentionChoices(dev);
  try {
    const forced: Partial<Record<AttentionPath, Awaited<ReturnType<typeof run>>>> = {};
    for (const p of cands) {
      setAttentionMode(p);
      forced[p] = await run();
      assert.deepEqual(forced[p]!.ran, KERNELS[p], `${p} runs its own kernels`);
    }
    setAttentionMode("auto");
    const ref = forced.composed!;
    for (const p of cands) {
      // Tuning with timings that make `p` the fastest: auto then runs exactly that path.
      const ms = Object.fromEntries(cands.map((c) => [c, c === p ? 1 : 2]));
      const rs = await tuneAttention(dev, [s], {
        force: true,
        time: (_, c) => Promise.resolve(ms[c]),
      });
      assert.equal(rs[0].winner, p);
      assert.equal(attentionPath(dev, s), p);
      const got = await run();
      assert.deepEqual(got.ran, KERNELS[p]);
      assert.deepEqual(got.y, forced[p]!.y, `auto = forced ${p}, bit for bit`);
      assert.deepEqual(got.g, forced[p]!.g);
      assertClose(got.y, ref.y, 2e-5 * (1 + Math.max(...ref.y.map(Math.abs))), `${p} y`);
      assertClose(got.g, ref.g, 2e-5 * (1 + Math.max(...ref.g.map(Math.abs))), `${p} dqkv`);
    }
  } finally {
    setAttentionMode("auto");
    clearAttentionChoices(dev);
  }
  // The real timer runs each path and restores the mode (its numbers decide nothing here).
  const ms = await timeAttentionPath(dev, "rows", { B: 1, nHead: 1, T: 8, hd: 8 }, 1);
  assert.ok(ms > 0 && Number.isFinite(ms));
  assert.equal(attentionMode(), "auto");
});
