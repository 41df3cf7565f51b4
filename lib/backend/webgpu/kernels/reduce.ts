/**
 * WGSL reduction over the middle axis of an [outer, len, inner] view (twin of `reduceCpu`).
 * One thread per output element, accumulating in f32 in index order like the CPU twin.
 *
 * @module
 */

import type { ReduceOp } from "../../backend.ts";
import type { Kernel } from "../engine.ts";
import { MAIN_1D, PRELUDE } from "./common.ts";

/** params: outer, len, inner. */
export function reduceKernel(op: ReduceOp): Kernel {
  const init = op === "max" ? "neg_inf()" : "0.0";
  const step = op === "max" ? "acc = max(acc, x);" : "acc += x;";
  const fin = op === "mean" ? "acc / f32(len)" : "acc";
  return {
    key: `reduce:${op}`,
    code: `${PRELUDE}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  let outer = pu(0u);
  let len = pu(1u);
  let inner = pu(2u);
  if (i >= outer * inner) { return; }
  let o = i / inner;
  let j = i % inner;
  var acc: f32 = ${init};
  for (var l = 0u; l < len; l++) {
    let x = A[(o * len + l) * inner + j];
    ${step}
  }
  O[i] = ${fin};
}`,
  };
}
