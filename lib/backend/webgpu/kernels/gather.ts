/**
 * WGSL data movement: embedding gather, strided gather (permute / narrow / copy) and f32↔f16
 * casts. Twins of `embeddingCpu`, `stridedCpu` and the CPU backend's `cast`.
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { MAIN_1D, PRELUDE } from "./common.ts";

/** params: n, V, C. Bindings: ids (i32), table, out. An id outside [0, V) gives a NaN row. */
export function embeddingKernel(): Kernel {
  return {
    key: "embedding",
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let n = pu(0u);
  let V = pu(1u);
  let C = pu(2u);
  if (i >= n * C) { return; }
  let id = I[i / C];
  if (id < 0 || u32(id) >= V) { O[i] = nan(); return; }
  O[i] = W[u32(id) * C + i % C];
}`,
  };
}

/**
 * Strided gather of 32-bit words (f32 or i32) or f16 halves.
 * params: n, rank, offset, shape[6] (3..8), strides[6] (9..14).
 */
export function stridedKernel(elem: "u32" | "f16"): Kernel {
  return {
    key: `strided:${elem}`,
    code: `${elem === "f16" ? "enable f16;" : ""}${PRELUDE}
@group(0) @binding(1) var<storage, read> A: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> O: array<${elem}>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= pu(0u)) { return; }
  let rank = pu(1u);
  var rem = i;
  var src = pu(2u);
  for (var d = 0u; d < rank; d++) {
    let ax = rank - 1u - d;
    let n = pu(3u + ax);
    src += (rem % n) * pu(9u + ax);
    rem = rem / n;
  }
  O[i] = A[src];
}`,
  };
}

/** Casts between f32 and f16 (round to nearest even on the way down). params: n. */
export function castKernel(from: "f32" | "f16", to: "f32" | "f16"): Kernel {
  return {
    key: `cast:${from}:${to}`,
    code: `enable f16;${PRELUDE}
@group(0) @binding(1) var<storage, read> A: array<${from}>;
@group(0) @binding(2) var<storage, read_write> O: array<${to}>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= pu(0u)) { return; }
  O[i] = ${to}(A[i]);
}`,
  };
}
