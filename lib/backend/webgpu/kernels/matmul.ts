/**
 * WGSL tiled matrix product with register blocking (twin of `matmulCpu`).
 *
 * A 16×16 workgroup computes a 64×64 output tile; each thread owns a 4×4 block of outputs held
 * in registers (rows ty + 16i, columns tx + 16j, so neighbouring threads touch neighbouring
 * addresses). Each step stages a 64×16 slice of op(A) and a 16×64 slice of op(B) in workgroup
 * memory, loading along whichever axis is contiguous in memory for the given transposition.
 * Out-of-range rows, columns and k are loaded as zero, so any M, N, K works.
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { PRELUDE } from "./common.ts";

/** Output tile edge (rows and columns per workgroup). */
export const TILE = 64;
/** k-slice staged per step. */
const BK = 16;

/**
 * params: M, N, K, transA, transB, strideA, strideB, hasBias.
 * Bindings: A, B, bias (ignored unless hasBias), out. Dispatch: [⌈N/64⌉, ⌈M/64⌉, batch].
 */
export function matmulKernel(): Kernel {
  return {
    key: "matmul",
    code: `${PRELUDE}
const BM: u32 = ${TILE}u;
const BN: u32 = ${TILE}u;
const BK: u32 = ${BK}u;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> Bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
var<workgroup> As: array<f32, ${TILE * BK}>; // As[k * BM + m]
var<workgroup> Bs: array<f32, ${TILE * BK}>; // Bs[k * BN + n]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = pu(0u);
  let N = pu(1u);
  let K = pu(2u);
  let ta = pu(3u) == 1u;
  let tb = pu(4u) == 1u;
  let a0 = wg.z * pu(5u);
  let b0 = wg.z * pu(6u);
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let tid = lid.y * 16u + lid.x;
  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }

  for (var k0 = 0u; k0 < K; k0 += BK) {
    // Stage op(A)[row0.., k0..] and op(B)[k0.., col0..]: 1024 elements each, 4 per thread.
    for (var l = 0u; l < 4u; l++) {
      let e = tid + l * 256u;
      var m: u32; var ka: u32;
      if (ta) { ka = e / BM; m = e % BM; } else { m = e / BK; ka = e % BK; }
      let gm = row0 + m;
      let gka = k0 + ka;
      var va = 0.0;
      if (gm < M && gka < K) {
        if (ta) { va = A[a0 + gka * M + gm]; } else { va = A[a0 + gm * K + gka]; }
      }
      As[ka * BM + m] = va;

      var n: u32; var kb: u32;
      if (tb) { n = e / BK; kb = e % BK; } else { kb = e / BN; n = e % BN; }
      let gn = col0 + n;
      let gkb = k0 + kb;
      var vb = 0.0;
      if (gn < N && gkb < K) {
        if (tb) { vb = B[b0 + gn * K + gkb]; } else { vb = B[b0 + gkb * N + gn]; }
      }
      Bs[kb * BN + n] = vb;
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      var ar: array<f32, 4>;
      var br: array<f32, 4>;
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
      if (pu(7u) == 1u) { v += Bias[c]; }
      O[o0 + r * N + c] = v;
    }
  }
}`,
  };
}
