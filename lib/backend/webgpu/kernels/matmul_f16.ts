/**
 * WGSL tiled matrix product of f16 tensors (`enable f16;`, needs the device feature
 * `shader-f16`). Twin of `matmulF16Cpu` (lib/backend/cpu/matmul_f16.ts).
 *
 * The backend runs f32 accumulation (the default) on the f32 matmul's tiled variants with f16
 * loads (`kernels/matmul.ts`, `half`), and f16 accumulation here. This kernel: a 16×16
 * workgroup computes a 64×64 output tile, each thread a 4×4 register block, with 64×16 slices of
 * op(A) and 16×64 slices of op(B) staged in workgroup memory. A, B and the bias are f16 in
 * storage; the staged slices and the accumulators hold the accumulation type:
 *
 * - `acc: "f32"` (default): each f16 is widened to f32 (exact) and every product is exact in f32
 *   (11 + 11 significant bits), so each `fma` is one f32 rounding of the running sum.
 * - `acc: "f16"`: products and running sums in f16 (half the registers and workgroup memory; on
 *   some GPUs twice the arithmetic rate), each step rounded to f16 (unit roundoff 2^-11). WGSL
 *   lets an f16 `fma` round the product first or not: lavapipe does (as the twin), a GPU with a
 *   fused f16 fma does not; both stay within the same error bound.
 *
 * Each thread sums k = 0, 1, … K-1 in order, then adds the bias, then converts to the output type
 * (`out: "f16"` default, or `"f32"`), exactly as the CPU twin does.
 *
 * @module
 */

import type { MatmulParams } from "../../backend.ts";
import type { Kernel } from "../engine.ts";
import { paramLayout, type ParamsOf, prelude } from "./common.ts";

/** Output tile edge (rows and columns per workgroup). */
export const F16_TILE = 64;
/** k-slice staged per step. */
const BK = 16;

/** Accumulation type of an f16 product. */
export type F16Accumulate = "f32" | "f16";
/** Output type of an f16 product. */
export type F16Out = "f16" | "f32";

/**
 * Parameters of {@link matmulF16Kernel}: as the f32 matmul's (named as in `MatmulParams`), with
 * the transpositions as flags instead of baked in, and no alpha or accumulation.
 */
export const MATMUL_F16_PARAMS = paramLayout({
  M: "u32",
  N: "u32",
  K: "u32",
  transA: "bool",
  transB: "bool",
  strideA: "u32",
  strideB: "u32",
  hasBias: "bool",
});
/** Launcher of {@link matmulF16Kernel}. Dispatch: {@link matmulF16Groups}. */
export function matmulF16Params(p: ParamsOf<typeof MATMUL_F16_PARAMS>): number[] {
  return MATMUL_F16_PARAMS.pack(p);
}
/** Dispatch of {@link matmulF16Kernel}: [⌈N/64⌉, ⌈M/64⌉, batch]. */
export function matmulF16Groups(
  p: Pick<MatmulParams, "M" | "N" | "batch">,
): [number, number, number] {
  return [Math.ceil(p.N / F16_TILE), Math.ceil(p.M / F16_TILE), p.batch];
}

/**
 * params: {@link MATMUL_F16_PARAMS}. Bindings: A (f16), B (f16), bias (f16; ignored unless
 * hasBias), out (`out`). Dispatch: {@link matmulF16Groups}.
 */
export function matmulF16Kernel(acc: F16Accumulate = "f32", out: F16Out = "f16"): Kernel {
  return {
    key: `matmul_f16:acc${acc}:out${out}`,
    code: `enable f16;
${prelude(MATMUL_F16_PARAMS)}
alias T = ${acc}; // accumulation type: staged slices, registers, bias add
const BM: u32 = ${F16_TILE}u;
const BN: u32 = ${F16_TILE}u;
const BK: u32 = ${BK}u;
@group(0) @binding(1) var<storage, read> A: array<f16>;
@group(0) @binding(2) var<storage, read> B: array<f16>;
@group(0) @binding(3) var<storage, read> Bias: array<f16>;
@group(0) @binding(4) var<storage, read_write> O: array<${out}>;
var<workgroup> As: array<T, ${F16_TILE * BK}>; // As[k * BM + m]
var<workgroup> Bs: array<T, ${F16_TILE * BK}>; // Bs[k * BN + n]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = p_M();
  let N = p_N();
  let K = p_K();
  let ta = p_transA();
  let tb = p_transB();
  let a0 = wg.z * p_strideA();
  let b0 = wg.z * p_strideB();
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let tid = lid.y * 16u + lid.x;
  var acc: array<T, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = T(0.0); }

  for (var k0 = 0u; k0 < K; k0 += BK) {
    // Stage op(A)[row0.., k0..] and op(B)[k0.., col0..]: 1024 elements each, 4 per thread.
    for (var l = 0u; l < 4u; l++) {
      let e = tid + l * 256u;
      var m: u32; var ka: u32;
      if (ta) { ka = e / BM; m = e % BM; } else { m = e / BK; ka = e % BK; }
      let gm = row0 + m;
      let gka = k0 + ka;
      var va = T(0.0);
      if (gm < M && gka < K) {
        if (ta) { va = T(A[a0 + gka * M + gm]); } else { va = T(A[a0 + gm * K + gka]); }
      }
      As[ka * BM + m] = va;

      var n: u32; var kb: u32;
      if (tb) { n = e / BK; kb = e % BK; } else { kb = e / BN; n = e % BN; }
      let gn = col0 + n;
      let gkb = k0 + kb;
      var vb = T(0.0);
      if (gn < N && gkb < K) {
        if (tb) { vb = T(B[b0 + gn * K + gkb]); } else { vb = T(B[b0 + gkb * N + gn]); }
      }
      Bs[kb * BN + n] = vb;
    }
    workgroupBarrier();
    // The zero padding past K adds exact zeros, so the sum is the same as stopping at K.
    for (var k = 0u; k < BK; k++) {
      var ar: array<T, 4>;
      var br: array<T, 4>;
      for (var i = 0u; i < 4u; i++) {
        ar[i] = As[k * BM + lid.y + 16u * i];
        br[i] = Bs[k * BN + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] = fma(ar[i], br[j], acc[i * 4u + j]); }
      }
    }
    workgroupBarrier();
  }

  let o0 = wg.z * M * N;
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y + 16u * i;
    if (r >= M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x + 16u * j;
      if (c >= N) { continue; }
      var v = acc[i * 4u + j];
      if (p_hasBias()) { v += T(Bias[c]); }
      O[o0 + r * N + c] = ${out}(v);
    }
  }
}`,
  };
}
