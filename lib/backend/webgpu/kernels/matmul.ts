/**
 * WGSL tiled matrix products with register blocking (twins of `matmulCpu`), generated from one
 * parameterised template so that a small family of well-known designs share one code path:
 *
 * - a workgroup of (BN/TN)×(BM/TM) threads computes a BM×BN output tile; each thread owns TM×TN
 *   outputs held in `vec4` registers: rows `4·(ty + TY·i) + r`, columns `4·(tx + TX·j) + c`, so
 *   neighbouring threads read neighbouring `vec4`s of workgroup memory (no bank conflicts);
 * - each step stages a BM×BK slice of op(A) and a BK×BN slice of op(B) in workgroup memory, stored
 *   k-major (`As[k][m]`, `Bs[k][n]`, rows padded by 4 floats) so the inner loop reads `vec4`s;
 * - global loads go along whichever axis is contiguous in memory, as `vec4<f32>` when that axis
 *   (and the batch stride) is a multiple of 4 (`vecA`/`vecB`), else as scalars; out-of-range rows,
 *   columns and k load as zero, so any M, N, K works;
 * - `doubleBuffer` variants prefetch the next k-slice into registers while computing the current
 *   one, with two workgroup buffers (one barrier per step);
 * - the epilogue computes `out = alpha·acc (+ bias[col]) (+ previous out)`, with `vec4` stores
 *   when N is a multiple of 4 (`vecO`).
 *
 * Transpositions and the `vec*` flags are baked into the code (they pick index arithmetic), so a
 * pipeline key is `matmul:<variant>:<tA><tB>:<vecA><vecB><vecO>`. The variant is chosen by the
 * backend (`WebGpuBackend.matmul`: forced, tuned or heuristic).
 *
 * @module
 */

import type { MatmulParams } from "../../backend.ts";
import type { Kernel } from "../engine.ts";
import { type QWeightSpec, setupWgsl } from "./qmatmul.ts";
import { paramLayout, type ParamsOf, prelude } from "./common.ts";

/** One design of the family: tile sizes and pipelining. */
export interface MatmulVariant {
  /** Name used in pipeline keys, `LORALAB_MATMUL_VARIANT` and tuning reports. */
  readonly name: string;
  /** Output rows per workgroup. */
  readonly bm: number;
  /** Output columns per workgroup. */
  readonly bn: number;
  /** k-slice staged per step. */
  readonly bk: number;
  /** Output rows per thread (multiple of 4). */
  readonly tm: number;
  /** Output columns per thread (multiple of 4). */
  readonly tn: number;
  /** Prefetch the next k-slice into registers (two workgroup buffers). */
  readonly doubleBuffer: boolean;
}

/**
 * The family, all with 256 threads per workgroup: `t64` (64×64 tile, 4×4 per thread, BK 16: the
 * original design, best for small outputs), `t128` (128×128, 8×8 per thread, BK 8), `t128db` (the
 * same, double-buffered), `t128k16` (128×128 with BK 16: half the barriers, 16.5 KiB of workgroup
 * memory, so it needs more than WebGPU's default 16 KiB limit), `t128x64` / `t64x128` (rectangular, 8×4 / 4×8 per thread, BK 16, for
 * tall or wide outputs).
 */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = [
  { name: "t64", bm: 64, bn: 64, bk: 16, tm: 4, tn: 4, doubleBuffer: false },
  { name: "t128", bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, doubleBuffer: false },
  { name: "t128db", bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, doubleBuffer: true },
  { name: "t128k16", bm: 128, bn: 128, bk: 16, tm: 8, tn: 8, doubleBuffer: false },
  { name: "t128x64", bm: 128, bn: 64, bk: 16, tm: 8, tn: 4, doubleBuffer: false },
  { name: "t64x128", bm: 64, bn: 128, bk: 16, tm: 4, tn: 8, doubleBuffer: false },
];

/** The variant called `name`; throws naming the valid ones otherwise. */
export function matmulVariant(name: string): MatmulVariant {
  const v = MATMUL_VARIANTS.find((x) => x.name === name);
  if (!v) {
    const names = MATMUL_VARIANTS.map((x) => x.name).join(", ");
    throw new Error(`webgpu matmul: unknown variant '${name}' (expected one of ${names})`);
  }
  return v;
}

/** Threads per workgroup of a variant. */
export function matmulThreads(v: MatmulVariant): number {
  return (v.bm / v.tm) * (v.bn / v.tn);
}

/** Workgroup memory a variant uses, in bytes (checked against the device limit). */
export function matmulWorkgroupBytes(v: MatmulVariant): number {
  return (v.doubleBuffer ? 2 : 1) * v.bk * (v.bm + 4 + v.bn + 4) * 4;
}

/** Compile-time choices of one pipeline besides the variant. */
export interface MatmulSpec {
  /** A is stored [K, M]. */
  transA: boolean;
  /** B is stored [N, K]. */
  transB: boolean;
  /** Load A as `vec4` (its contiguous axis and batch stride are multiples of 4). */
  vecA: boolean;
  /** Load B as `vec4` (its contiguous axis and batch stride are multiples of 4). */
  vecB: boolean;
  /** Store the output (and read bias / previous output) as `vec4` (N is a multiple of 4). */
  vecO: boolean;
}

/** The pipeline spec for a product: transpositions plus which operands allow `vec4` access. */
export function matmulSpec(p: MatmulParams): MatmulSpec {
  const { M, N, K, transA, transB, strideA, strideB } = p;
  return {
    transA,
    transB,
    vecA: (transA ? M : K) % 4 === 0 && strideA % 4 === 0,
    vecB: (transB ? K : N) % 4 === 0 && strideB % 4 === 0,
    vecO: N % 4 === 0,
  };
}

/** Workgroup counts of a product with a variant: [⌈N/BN⌉, ⌈M/BM⌉, batch]. */
export function matmulGroups(v: MatmulVariant, p: MatmulParams): [number, number, number] {
  return [Math.ceil(p.N / v.bn), Math.ceil(p.M / v.bm), p.batch];
}

/**
 * Parameters of {@link matmulKernel}: op(A) [M, K] · op(B) [K, N], the batch strides of A and B
 * (0 broadcasts), whether the bias is added, the factor `alpha` of the product, and whether the
 * output is added to (named as in `MatmulParams`).
 */
export const MATMUL_PARAMS = paramLayout({
  M: "u32",
  N: "u32",
  K: "u32",
  strideA: "u32",
  strideB: "u32",
  hasBias: "bool",
  alpha: "f32",
  accumulate: "bool",
});
/** Launcher of {@link matmulKernel}. Dispatch: {@link matmulGroups}. */
export function matmulParams(p: ParamsOf<typeof MATMUL_PARAMS>): number[] {
  return MATMUL_PARAMS.pack(p);
}

/** How one operand is staged: memory layout, tile extent and load width. */
interface Operand {
  /** "A" or "B" (global binding name; registers are r<X><l>). */
  x: string;
  /** Workgroup array. */
  s: string;
  /** Floats per k-row of the workgroup array (tile extent + 4 padding). */
  ss: number;
  /** Tile extent along m (A) or n (B). */
  ext: number;
  /** Memory rows run along k (the tile's m/n axis is contiguous). */
  kMajor: boolean;
  /** vec4 global loads. */
  vec: boolean;
  /** B only: read a packed frozen weight through `wval` / `wload4` (see qmatmul.ts). */
  packed?: boolean;
  /** Stored as f16 (widened to f32 as it is loaded; exact). */
  half?: boolean;
  /** WGSL: batch offset, tile origin along m/n, size along m/n. */
  base: string;
  origin: string;
  size: string;
}

/** Loads per thread and memory-tile columns of an operand. */
function geometry(o: Operand, bk: number, nt: number): { loads: number; mc: number } {
  const mr = o.kMajor ? bk : o.ext, mc = o.kMajor ? o.ext : bk;
  const per = o.vec ? 4 : 1;
  const loads = (mr * mc) / per / nt;
  if (!Number.isInteger(loads) || loads < 1) {
    throw new Error(`webgpu matmul: a ${mr}×${mc} tile does not split over ${nt} threads`);
  }
  return { loads, mc };
}

/**
 * WGSL lines run once per thread: the memory-tile row `qr` and column `qc` of each of its loads
 * (loop-invariant).
 */
function genCoords(o: Operand, bk: number, nt: number): string {
  const { loads, mc } = geometry(o, bk, nt);
  const per = o.vec ? 4 : 1;
  const lines: string[] = [];
  for (let l = 0; l < loads; l++) {
    const q = `(tid + ${l * nt}u)`;
    lines.push(
      `  let q${o.x}r${l} = ${q} / ${mc / per}u;`,
      `  let q${o.x}c${l} = (${q} % ${mc / per}u) * ${per}u;`,
      `  var r${o.x}${l}: ${o.vec ? "vec4<f32>" : "f32"};`,
    );
  }
  return lines.join("\n");
}

/** WGSL that loads the k-slice starting at `k0` from global memory into registers. */
function genLoad(o: Operand, bk: number, nt: number): string {
  const { loads } = geometry(o, bk, nt);
  const lines: string[] = [];
  for (let l = 0; l < loads; l++) {
    const r = `q${o.x}r${l}`, c = `q${o.x}c${l}`;
    // kMajor: memory is [K, size] (row k); otherwise [size, K] (row m/n).
    const [gr, gc, rows, cols, ld] = o.kMajor
      ? [`k0 + ${r}`, `${o.origin} + ${c}`, "K", o.size, o.size]
      : [`${o.origin} + ${r}`, `k0 + ${c}`, o.size, "K", "K"];
    const idx = o.vec
      ? `${o.base} / 4u + gr * (${ld} / 4u) + gc / 4u`
      : `${o.base} + gr * ${ld} + gc`;
    // A packed weight W is one [rows, cols] matrix: element (gr, gc) is flat gr·ld + gc, row gr.
    const read = o.packed
      ? `${o.vec ? "wload4" : "wval"}(gr * ${ld} + gc, gr)`
      : o.half
      ? `${o.vec ? "vec4<f32>" : "f32"}(${o.x}[${idx}])`
      : `${o.x}[${idx}]`;
    const zero = o.vec ? "vec4<f32>(0.0)" : "0.0";
    lines.push(
      `    { let gr = ${gr}; let gc = ${gc};`,
      `      if (gr < ${rows} && gc < ${cols}) { r${o.x}${l} = ${read}; } ` +
        `else { r${o.x}${l} = ${zero}; } }`,
    );
  }
  return lines.join("\n");
}

/** WGSL that stores the registers into workgroup buffer `buf` (an offset in vec4s). */
function genStore(o: Operand, bk: number, nt: number, buf: string): string {
  const { loads } = geometry(o, bk, nt);
  const lines: string[] = [];
  const q4 = o.ss / 4;
  for (let l = 0; l < loads; l++) {
    const r = `q${o.x}r${l}`, c = `q${o.x}c${l}`, reg = `r${o.x}${l}`;
    if (o.kMajor && o.vec) {
      // Four consecutive m/n at one k: one vec4 store.
      lines.push(`    ${o.s}[${buf} + ${r} * ${q4}u + ${c} / 4u] = ${reg};`);
    } else if (o.vec) {
      // Four consecutive k at one m/n: four scalar stores.
      for (let cc = 0; cc < 4; cc++) {
        lines.push(
          `    ${o.s}[${buf} + (${c} + ${cc}u) * ${q4}u + ${r} / 4u][${r} % 4u] = ${reg}[${cc}];`,
        );
      }
    } else {
      const [k, mn] = o.kMajor ? [r, c] : [c, r];
      lines.push(`    ${o.s}[${buf} + ${k} * ${q4}u + ${mn} / 4u][${mn} % 4u] = ${reg};`);
    }
  }
  return lines.join("\n");
}

/** WGSL of the unrolled inner product over one staged k-slice. */
function genCompute(v: MatmulVariant, aBuf: string, bBuf: string): string {
  const TX = v.bn / v.tn, TY = v.bm / v.tm;
  const ni = v.tm / 4, nj = v.tn / 4;
  const sa4 = (v.bm + 4) / 4, sb4 = (v.bn + 4) / 4;
  const lines: string[] = [];
  for (let k = 0; k < v.bk; k++) {
    lines.push("    {");
    for (let i = 0; i < ni; i++) {
      lines.push(`      let a${i} = As[${aBuf} + ${k * sa4 + TY * i}u + ty];`);
    }
    for (let j = 0; j < nj; j++) {
      lines.push(`      let b${j} = Bs[${bBuf} + ${k * sb4 + TX * j}u + tx];`);
    }
    for (let i = 0; i < ni; i++) {
      for (let r = 0; r < 4; r++) {
        for (let j = 0; j < nj; j++) {
          const c = `c${i * 4 + r}_${j}`;
          lines.push(`      ${c} = fma(vec4<f32>(a${i}[${r}]), b${j}, ${c});`);
        }
      }
    }
    lines.push("    }");
  }
  return lines.join("\n");
}

/**
 * WGSL of the epilogue: alpha, bias, accumulate, bounds-checked stores. With `half`, bias and
 * output are f16 (read widened, the f32 result rounded to f16 when stored).
 */
function genEpilogue(v: MatmulVariant, vecO: boolean, half = { bias: false, out: false }): string {
  const TX = v.bn / v.tn, TY = v.bm / v.tm;
  const f = vecO ? "vec4<f32>" : "f32", h = vecO ? "vec4<f16>" : "f16";
  const rdB = (x: string) => (half.bias ? `${f}(${x})` : x);
  const rdO = (x: string) => (half.out ? `${f}(${x})` : x);
  const wrO = (x: string) => (half.out ? `${h}(${x})` : x);
  const lines: string[] = [];
  for (let i = 0; i < v.tm / 4; i++) {
    for (let r = 0; r < 4; r++) {
      lines.push(`  { let row = row0 + ${4 * TY * i + r}u + 4u * ty;`, `    if (row < M) {`);
      for (let j = 0; j < v.tn / 4; j++) {
        const c = `c${i * 4 + r}_${j}`;
        lines.push(`      { let col = col0 + ${4 * TX * j}u + 4u * tx;`);
        if (vecO) {
          lines.push(
            `        if (col < N) {`,
            `          var val = alpha * ${c};`,
            `          if (hasBias) { val += ${rdB("Bias[col / 4u]")}; }`,
            `          let o = (o0 + row * N + col) / 4u;`,
            `          if (accumulate) { val += ${rdO("O[o]")}; }`,
            `          O[o] = ${wrO("val")};`,
            `        }`,
          );
        } else {
          for (let cc = 0; cc < 4; cc++) {
            lines.push(
              `        if (col + ${cc}u < N) {`,
              `          var val = alpha * ${c}[${cc}];`,
              `          if (hasBias) { val += ${rdB(`Bias[col + ${cc}u]`)}; }`,
              `          let o = o0 + row * N + col + ${cc}u;`,
              `          if (accumulate) { val += ${rdO("O[o]")}; }`,
              `          O[o] = ${wrO("val")};`,
              `        }`,
            );
          }
        }
        lines.push(`      }`);
      }
      lines.push(`    } }`);
    }
  }
  return lines.join("\n");
}

/**
 * The kernel of one variant and spec. params: {@link MATMUL_PARAMS}. Bindings: A, B, bias
 * (ignored unless hasBias), out (read too when accumulating). Dispatch: {@link matmulGroups}.
 *
 * With `q`, B is a packed frozen weight (f16, int8, NF4, FP4, …) de-quantized as the k-slices
 * are staged, so each decoded weight serves every row of the tile (the fused QLoRA product).
 * Then batch must be 1 and the bindings are A, bias, out, then the weight's (`q.decodeWgsl`).
 *
 * With `half`, A, B and the bias are f16 tensors (`enable f16;`, needs `shader-f16`) widened to
 * f32 as they are staged: products of f16 values are exact in f32, so each `fma` is one f32
 * rounding, in k order, as `matmulF16Cpu` with f32 accumulation; the output is f16 or f32.
 */
export function matmulKernel(
  v: MatmulVariant,
  s: MatmulSpec,
  q?: QWeightSpec,
  half?: { out: "f16" | "f32" },
): Kernel {
  if (q && half) throw new Error("webgpu matmul: a packed weight with f16 operands");
  const nt = matmulThreads(v);
  if (v.tm % 4 || v.tn % 4 || v.bm % v.tm || v.bn % v.tn) {
    throw new Error(`webgpu matmul: variant ${v.name} has a bad thread tile`);
  }
  const TX = v.bn / v.tn;
  const A: Operand = {
    x: "A",
    s: "As",
    ss: v.bm + 4,
    ext: v.bm,
    kMajor: s.transA,
    vec: s.vecA,
    half: half !== undefined,
    base: "a0",
    origin: "row0",
    size: "M",
  };
  const B: Operand = {
    x: "B",
    s: "Bs",
    ss: v.bn + 4,
    ext: v.bn,
    kMajor: !s.transB,
    vec: s.vecB,
    packed: q !== undefined,
    half: half !== undefined,
    base: "b0",
    origin: "col0",
    size: "N",
  };
  const nbuf = v.doubleBuffer ? 2 : 1;
  const aSlice = (v.bk * A.ss) / 4, bSlice = (v.bk * B.ss) / 4; // vec4s per buffer
  const accs: string[] = [];
  for (let i = 0; i < v.tm; i++) {
    for (let j = 0; j < v.tn / 4; j++) accs.push(`  var c${i}_${j} = vec4<f32>(0.0);`);
  }
  const t = (b: boolean) => (b ? "vec4<f32>" : "f32");
  const h = (b: boolean) => (b ? "vec4<f16>" : "f16");
  const load = (k0: string) =>
    `  { let k0 = ${k0};\n${genLoad(A, v.bk, nt)}\n${genLoad(B, v.bk, nt)}\n  }`;
  const store = (buf: string) =>
    `${genStore(A, v.bk, nt, `${buf} * ${aSlice}u`)}\n${
      genStore(B, v.bk, nt, `${buf} * ${bSlice}u`)
    }`;
  const body = v.doubleBuffer
    ? `  if (nT > 0u) {
${load("0u")}
${store("0u")}
  }
  workgroupBarrier();
  for (var t = 0u; t < nT; t++) {
    let cur = t & 1u;
    let more = t + 1u < nT;
    if (more) {
${load(`(t + 1u) * ${v.bk}u`)}
    }
${genCompute(v, `cur * ${aSlice}u`, `cur * ${bSlice}u`)}
    if (more) {
${store("(cur ^ 1u)")}
    }
    workgroupBarrier();
  }`
    : `  for (var t = 0u; t < nT; t++) {
${load(`t * ${v.bk}u`)}
${store("0u")}
    workgroupBarrier();
${genCompute(v, "0u", "0u")}
    workgroupBarrier();
  }`;
  const tA = +s.transA, tB = +s.transB, vA = +s.vecA, vB = +s.vecB, vO = +s.vecO;
  const bindings = q
    ? `@group(0) @binding(1) var<storage, read> A: array<${t(s.vecA)}>;
@group(0) @binding(2) var<storage, read> Bias: array<${t(s.vecO)}>;
@group(0) @binding(3) var<storage, read_write> O: array<${t(s.vecO)}>;
${q.decodeWgsl(4)}`
    : half
    ? `@group(0) @binding(1) var<storage, read> A: array<${h(s.vecA)}>;
@group(0) @binding(2) var<storage, read> B: array<${h(s.vecB)}>;
@group(0) @binding(3) var<storage, read> Bias: array<${h(s.vecO)}>;
@group(0) @binding(4) var<storage, read_write> O: array<${
      half.out === "f16" ? h(s.vecO) : t(s.vecO)
    }>;`
    : `@group(0) @binding(1) var<storage, read> A: array<${t(s.vecA)}>;
@group(0) @binding(2) var<storage, read> B: array<${t(s.vecB)}>;
@group(0) @binding(3) var<storage, read> Bias: array<${t(s.vecO)}>;
@group(0) @binding(4) var<storage, read_write> O: array<${t(s.vecO)}>;`;
  return {
    key: `matmul:${v.name}:${tA}${tB}:${vA}${vB}${vO}${q ? `:q:${q.key}` : ""}${
      half ? `:h${half.out}` : ""
    }`,
    code: `${half ? "enable f16;\n" : ""}${prelude(MATMUL_PARAMS)}
// variant ${v.name}: ${v.bm}×${v.bn} tile, ${v.tm}×${v.tn} per thread, BK ${v.bk}` +
      `${
        v.doubleBuffer ? ", double-buffered" : ""
      }; transA ${tA} transB ${tB}; vec4 A ${vA} B ${vB} out ${vO}
${bindings}
var<workgroup> As: array<vec4<f32>, ${nbuf * aSlice}>; // As[k][m], rows of ${A.ss} floats
var<workgroup> Bs: array<vec4<f32>, ${nbuf * bSlice}>; // Bs[k][n], rows of ${B.ss} floats

@compute @workgroup_size(${TX}, ${v.bm / v.tm}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = p_M();
  let N = p_N();
  let K = p_K();
  let a0 = wg.z * p_strideA();
  let b0 = wg.z * p_strideB();
  let hasBias = p_hasBias();
  let alpha = p_alpha();
  let accumulate = p_accumulate();
  let row0 = wg.y * ${v.bm}u;
  let col0 = wg.x * ${v.bn}u;
  let tx = lid.x;
  let ty = lid.y;
  let tid = ty * ${TX}u + tx;${q?.setup ? `\n${setupWgsl(q, "tid")}` : ""}
  let nT = (K + ${v.bk - 1}u) / ${v.bk}u;
${genCoords(A, v.bk, nt)}
${genCoords(B, v.bk, nt)}
${accs.join("\n")}

${body}

  let o0 = wg.z * M * N;
${genEpilogue(v, s.vecO, { bias: half !== undefined, out: half?.out === "f16" })}
}`,
  };
}
