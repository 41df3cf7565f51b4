/**
 * Every WebGPU kernel reads its parameter words only through the named accessors of its layout
 * (`p_<name>()`, see `lib/backend/webgpu/kernels/common.ts`), and the launcher the backend calls
 * for it writes exactly the words those accessors read: each kernel's generated WGSL is parsed for
 * its accessors (name, word, type, array length), and its launcher is fed a probe with a distinct
 * value per field. A kernel or launcher left out of the table below fails too.
 */

import assert from "node:assert/strict";
import type { BinaryOp, MatmulParams, ReduceOp, UnaryOp } from "../../lib/backend/backend.ts";
import { f32Bits, type Kernel, PARAM_WORDS } from "../../lib/backend/webgpu/engine.ts";
import {
  ATT_MAX_HD,
  attentionBackwardKVKernel,
  attentionBackwardQKernel,
  attentionForwardKernel,
  attentionParams,
} from "../../lib/backend/webgpu/kernels/attention.ts";
import {
  attentionTileConfig,
  attentionTiledBackwardKVKernel,
  attentionTiledBackwardQKernel,
  attentionTiledForwardKernel,
} from "../../lib/backend/webgpu/kernels/attention_tiled.ts";
import {
  ADAMW_MANY_MAX,
  adamwKernel,
  adamwManyKernel,
  adamwManyParams,
  adamwParams,
  clipFactorKernel,
  clipFactorParams,
  crossEntropyBackwardKernel,
  embeddingBackwardKernels,
  layerNormBackwardColsKernel,
  layerNormBackwardColsParams,
  layerNormBackwardRowsKernel,
  sgdKernel,
  sgdParams,
  sumSquaresKernel,
  sumSquaresParams,
  unnarrowKernel,
  unnarrowParams,
} from "../../lib/backend/webgpu/kernels/backward.ts";
import { nParams, paramLayout } from "../../lib/backend/webgpu/kernels/common.ts";
import {
  accumulateKernel,
  binaryKernel,
  binaryParams,
  geluBackwardKernel,
  unaryKernel,
  unaryParams,
} from "../../lib/backend/webgpu/kernels/elementwise.ts";
import {
  castKernel,
  embeddingKernel,
  embeddingParams,
  embeddingRowsParams,
  stridedKernel,
  stridedParams,
} from "../../lib/backend/webgpu/kernels/gather.ts";
import {
  MATMUL_VARIANTS,
  matmulKernel,
  matmulParams,
  matmulSpec,
} from "../../lib/backend/webgpu/kernels/matmul.ts";
import { matmulF16Kernel, matmulF16Params } from "../../lib/backend/webgpu/kernels/matmul_f16.ts";
import {
  qDequantKernel,
  qDequantParams,
  qMatvecKernel,
  qMatvecParams,
} from "../../lib/backend/webgpu/kernels/qmatmul.ts";
import { quantize4Kernel, quantize4Params } from "../../lib/backend/webgpu/kernels/quantize4.ts";
import { reduceKernel, reduceParams } from "../../lib/backend/webgpu/kernels/reduce.ts";
import {
  crossEntropyKernel,
  crossEntropyParams,
  layerNormKernel,
  layerNormParams,
  softmaxKernel,
  softmaxParams,
} from "../../lib/backend/webgpu/kernels/rows.ts";
import type { WebGpuBackend } from "../../lib/backend/webgpu/webgpu_backend.ts";
import { FORMATS } from "../../lib/quant/formats/registry.ts";
import type { QuantFormat } from "../../lib/quant/weight.ts";
import { qWeightSpec } from "../../lib/quant/qmatmul_webgpu.ts";
import { quantize4Spec } from "../../lib/quant/quantize_webgpu.ts";
import { gpu } from "../harness.ts";

// deno-lint-ignore no-explicit-any
type Launcher = (p: any) => number[];

/** One kernel factory: its instances (every baked-in variant worth parsing) and its launcher. */
interface Entry {
  kernels: () => Kernel[];
  params: Launcher;
}

const UNARY_OPS: UnaryOp[] = [
  "exp",
  "log",
  "gelu",
  "neg",
  "sqrt",
  "relu",
  "scale",
  "geluGrad",
  "step",
  "silu",
  "siluGrad",
];
const BINARY_OPS: BinaryOp[] = ["add", "sub", "mul", "div"];
const REDUCE_OPS: ReduceOp[] = ["sum", "mean", "max"];
const HEADS = [1, 16, 64, 100, ATT_MAX_HD];
const mm = (transA: boolean, transB: boolean, n: number): MatmulParams => ({
  batch: 1,
  M: n,
  N: n,
  K: n,
  transA,
  transB,
  strideA: 0,
  strideB: 0,
});
const MM_SPECS = [mm(false, false, 64), mm(true, false, 63), mm(false, true, 64), mm(true, true, 5)]
  .map(matmulSpec);
const Q_SPECS = (Object.keys(FORMATS) as QuantFormat[]).flatMap((format) =>
  [0, 64].map((blockSize) => qWeightSpec({ format, blockSize, dqBlockSize: 0 }))
).concat(qWeightSpec({ format: "nf4", blockSize: 64, dqBlockSize: 256 }, "workgroup"));
const TILES = HEADS.map((hd) => [hd, attentionTileConfig(hd, 16384, 64)] as const)
  .filter(([, c]) => c !== null).map(([hd, c]) => [hd, c!] as const);

/** Every kernel factory of `lib/backend/webgpu/kernels/`, by its exported name. */
const TABLE: Record<string, Entry> = {
  unaryKernel: { kernels: () => UNARY_OPS.map(unaryKernel), params: unaryParams },
  binaryKernel: { kernels: () => BINARY_OPS.map(binaryKernel), params: binaryParams },
  geluBackwardKernel: { kernels: () => [geluBackwardKernel()], params: nParams },
  accumulateKernel: { kernels: () => [accumulateKernel()], params: nParams },
  embeddingKernel: { kernels: () => [embeddingKernel()], params: embeddingRowsParams },
  stridedKernel: {
    kernels: () => [stridedKernel("u32"), stridedKernel("f16")],
    params: stridedParams,
  },
  castKernel: {
    kernels: () => [castKernel("f32", "f16"), castKernel("f16", "f32")],
    params: nParams,
  },
  reduceKernel: { kernels: () => REDUCE_OPS.map(reduceKernel), params: reduceParams },
  softmaxKernel: { kernels: () => [softmaxKernel()], params: softmaxParams },
  layerNormKernel: { kernels: () => [layerNormKernel()], params: layerNormParams },
  crossEntropyKernel: { kernels: () => [crossEntropyKernel()], params: crossEntropyParams },
  layerNormBackwardRowsKernel: {
    kernels: () => [layerNormBackwardRowsKernel()],
    params: layerNormParams,
  },
  layerNormBackwardColsKernel: {
    kernels: () => [layerNormBackwardColsKernel()],
    params: layerNormBackwardColsParams,
  },
  embeddingBackwardKernels: {
    kernels: () => Object.values(embeddingBackwardKernels()),
    params: embeddingParams,
  },
  crossEntropyBackwardKernel: {
    kernels: () => [crossEntropyBackwardKernel()],
    params: crossEntropyParams,
  },
  unnarrowKernel: { kernels: () => [unnarrowKernel()], params: unnarrowParams },
  adamwKernel: { kernels: () => [adamwKernel()], params: adamwParams },
  adamwManyKernel: {
    kernels: () => Array.from({ length: ADAMW_MANY_MAX }, (_, k) => adamwManyKernel(k + 1)),
    params: adamwManyParams,
  },
  sgdKernel: { kernels: () => [sgdKernel()], params: sgdParams },
  sumSquaresKernel: { kernels: () => [sumSquaresKernel()], params: sumSquaresParams },
  clipFactorKernel: { kernels: () => [clipFactorKernel()], params: clipFactorParams },
  attentionForwardKernel: {
    kernels: () => HEADS.map(attentionForwardKernel),
    params: attentionParams,
  },
  attentionBackwardQKernel: {
    kernels: () => HEADS.map(attentionBackwardQKernel),
    params: attentionParams,
  },
  attentionBackwardKVKernel: {
    kernels: () => HEADS.map(attentionBackwardKVKernel),
    params: attentionParams,
  },
  attentionTiledForwardKernel: {
    kernels: () => TILES.map(([hd, c]) => attentionTiledForwardKernel(hd, c)),
    params: attentionParams,
  },
  attentionTiledBackwardQKernel: {
    kernels: () => TILES.map(([hd, c]) => attentionTiledBackwardQKernel(hd, c)),
    params: attentionParams,
  },
  attentionTiledBackwardKVKernel: {
    kernels: () => TILES.map(([hd, c]) => attentionTiledBackwardKVKernel(hd, c)),
    params: attentionParams,
  },
  matmulKernel: {
    kernels: () =>
      MATMUL_VARIANTS.flatMap((v) => [
        ...MM_SPECS.map((s) => matmulKernel(v, s)),
        ...MM_SPECS.map((s) => matmulKernel(v, s, undefined, { out: "f16" })),
        ...MM_SPECS.map((s) => matmulKernel(v, s, undefined, { out: "f32" })),
        ...Q_SPECS.map((q) => matmulKernel(v, matmulSpec(mm(false, true, 64)), q)),
        ...Q_SPECS.map((q) => matmulKernel(v, matmulSpec(mm(false, false, 61)), q)),
      ]),
    params: matmulParams,
  },
  matmulF16Kernel: {
    kernels: () =>
      (["f32", "f16"] as const).flatMap((a) =>
        (["f16", "f32"] as const).map((o) => matmulF16Kernel(a, o))
      ),
    params: matmulF16Params,
  },
  qDequantKernel: { kernels: () => Q_SPECS.map(qDequantKernel), params: qDequantParams },
  qMatvecKernel: {
    kernels: () =>
      Q_SPECS.flatMap((q) => [
        qMatvecKernel(q, false),
        qMatvecKernel(q, false, 1, true),
        qMatvecKernel(q, true),
      ]),
    params: qMatvecParams,
  },
  quantize4Kernel: {
    kernels: () =>
      (["nf4", "fp4", "int4"] as const).flatMap((f) =>
        [64, 136].map((bs) => quantize4Kernel(quantize4Spec(f, bs)))
      ),
    params: quantize4Params,
  },
};

/** A field as the WGSL declares it. */
interface Accessor {
  name: string;
  type: "u32" | "f32" | "bool";
  at: number;
  count: number | null;
}

const SINGLE = /^fn p_(\w+)\(\) -> (u32|f32|bool) \{ return p([uf])\((\d+)u\)( != 0u)?; \}$/;
const ARRAY = /^fn p_(\w+)\(i: u32\) -> (u32|f32) \{ return p([uf])\((\d+)u \+ i\); \}$/;
const LEN = /^const p_(\w+)_len: u32 = (\d+)u;$/;
const RAW_READERS = [
  "struct Params { v: array<vec4<u32>, 8> }",
  "@group(0) @binding(0) var<uniform> params_: Params;",
  "fn pu(i: u32) -> u32 { return params_.v[i / 4u][i % 4u]; }",
  "fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }",
];

/**
 * The accessors a kernel declares, checked for shape (f32 read as pf, others as pu; a bool as
 * `!= 0u`); asserts that nothing else in the code reads the parameter block and that every
 * `p_` name used is declared.
 */
function accessorsOf(k: Kernel): Accessor[] {
  const out: Accessor[] = [];
  const lens = new Map<string, number>();
  const rest: string[] = [];
  for (const line of k.code.split("\n")) {
    const s = SINGLE.exec(line), a = ARRAY.exec(line), l = LEN.exec(line);
    if (s) {
      const [, name, type, reader, at, neq] = s;
      assert.equal(reader, type === "f32" ? "f" : "u", `${k.key}: p_${name} reads with p${reader}`);
      assert.equal(!!neq, type === "bool", `${k.key}: p_${name} as ${type}`);
      out.push({ name, type: type as Accessor["type"], at: +at, count: null });
    } else if (a) {
      const [, name, type, reader, at] = a;
      assert.equal(reader, type === "f32" ? "f" : "u", `${k.key}: p_${name} reads with p${reader}`);
      out.push({ name, type: type as Accessor["type"], at: +at, count: -1 });
    } else if (l) {
      lens.set(l[1], +l[2]);
    } else if (!RAW_READERS.includes(line)) rest.push(line);
  }
  for (const f of out) {
    if (f.count === null) continue;
    const n = lens.get(f.name);
    assert.ok(n !== undefined, `${k.key}: array p_${f.name} without p_${f.name}_len`);
    f.count = n;
  }
  assert.equal(lens.size, out.filter((f) => f.count !== null).length, `${k.key}: stray _len`);
  const body = rest.join("\n");
  assert.doesNotMatch(body, /\bp[uf]\s*\(|params_/, `${k.key} reads a parameter word by number`);
  const declared = new Set(out.map((f) => f.name));
  for (const m of body.matchAll(/\bp_(\w+?)(_len)?\b/g)) {
    assert.ok(declared.has(m[1]), `${k.key} reads p_${m[1]}, which its layout lacks`);
  }
  return out;
}

/** The words the fields cover: contiguous from 0, no overlap, within the block. */
function wordsOf(key: string, fields: Accessor[]): number {
  const sorted = [...fields].sort((a, b) => a.at - b.at);
  let next = 0;
  for (const f of sorted) {
    assert.equal(f.at, next, `${key}: p_${f.name} at word ${f.at}, expected ${next}`);
    next += f.count ?? 1;
  }
  assert.ok(next <= PARAM_WORDS, `${key}: ${next} words`);
  return next;
}

/**
 * Feeds the launcher distinct values (bools: all false, then each one true alone) and checks
 * every word against what the accessors read.
 */
function checkLauncher(key: string, fields: Accessor[], launch: Launcher): void {
  const words = wordsOf(key, fields);
  const bools = fields.filter((f) => f.type === "bool").map((f) => f.name);
  for (const on of [null, ...bools]) {
    const probe: Record<string, unknown> = {};
    const want = new Array<number>(words).fill(-1);
    let seed = 1;
    for (const f of fields) {
      const value = (): number => f.type === "f32" ? 0.25 + seed++ : 100 * seed++ + 7;
      const word = (x: number) => f.type === "f32" ? f32Bits(x) : x;
      if (f.type === "bool") {
        probe[f.name] = f.name === on;
        want[f.at] = f.name === on ? 1 : 0;
      } else if (f.count === null) {
        const x = value();
        probe[f.name] = x;
        want[f.at] = word(x);
      } else {
        const xs = Array.from({ length: f.count }, value);
        probe[f.name] = xs;
        xs.forEach((x, i) => want[f.at + i] = word(x));
      }
    }
    const got = launch(probe);
    assert.deepEqual(got, want, `${key}: launcher words (true: ${on ?? "none"})`);
  }
}

Deno.test("kernel params: every kernel's launcher writes the words its WGSL reads", () => {
  for (const [factory, e] of Object.entries(TABLE)) {
    const kernels = e.kernels();
    assert.ok(kernels.length > 0, factory);
    for (const k of kernels) checkLauncher(k.key, accessorsOf(k), e.params);
  }
});

Deno.test("kernel params: the table covers every kernel factory and launcher", async () => {
  const dir = new URL("../../lib/backend/webgpu/kernels/", import.meta.url);
  const launchers = new Set(Object.values(TABLE).map((e) => e.params));
  for await (const f of Deno.readDir(dir)) {
    if (!f.name.endsWith(".ts")) continue;
    const mod: Record<string, unknown> = await import(new URL(f.name, dir).href);
    for (const [name, x] of Object.entries(mod)) {
      if (typeof x !== "function") continue;
      if (/Kernels?$/.test(name)) {
        assert.ok(name in TABLE, `kernels/${f.name}: ${name} is missing from this test's table`);
      }
      if (/Params$/.test(name)) {
        assert.ok(launchers.has(x as Launcher), `kernels/${f.name}: ${name} launches no kernel`);
      }
    }
  }
});

Deno.test(
  "kernel params: one kernel of each factory compiles with its accessors",
  { sanitizeResources: false, sanitizeOps: false },
  async () => {
    const dev = (await gpu()) as WebGpuBackend;
    const device = dev.engine.device;
    for (const [factory, e] of Object.entries(TABLE)) {
      const k = e.kernels()[0];
      if (k.code.includes("enable f16;") && !dev.hasF16) continue;
      device.pushErrorScope("validation");
      device.createComputePipeline({
        layout: "auto",
        compute: { module: device.createShaderModule({ code: k.code }), entryPoint: "main" },
      });
      const err = await device.popErrorScope();
      assert.equal(err, null, `${factory} (${k.key}): ${err?.message}`);
    }
  },
);

Deno.test("kernel params: paramLayout places, packs and refuses", () => {
  const L = paramLayout({ n: "u32", xs: ["u32", 3], on: "bool", a: "f32", ws: ["f32", 2] });
  assert.equal(L.words, 8);
  assert.deepEqual(
    L.pack({ n: 5, xs: [1, 2], on: true, a: 0.5, ws: [2] }),
    [5, 1, 2, 0, 1, f32Bits(0.5), f32Bits(2), 0],
  );
  assert.throws(() => L.pack({ n: 5, xs: [1, 2, 3, 4], on: true, a: 0, ws: [] }), RangeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => L.pack({ xs: [], on: true, a: 0, ws: [] } as any), TypeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => L.pack({ n: 1, xs: [], on: 1, a: 0, ws: [] } as any), TypeError);
  assert.throws(() => paramLayout({ big: ["u32", PARAM_WORDS + 1] }), /holds 32/);
  assert.throws(() => paramLayout({ "a-b": "u32" }), /identifier/);
  assert.throws(() => paramLayout({ "0": "u32" }), /identifier/);
});
