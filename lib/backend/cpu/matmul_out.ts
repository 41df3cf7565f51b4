/**
 * The output checks shared by the CPU matmuls (`matmulJs`, `matmulBlas`).
 *
 * @module
 */

import type { MatmulParams } from "../backend.ts";

/**
 * Throws unless `out` suits a product: present when `p.accumulate`, long enough, `alpha` finite.
 */
export function checkMatmulOut(p: MatmulParams, out?: Float32Array): void {
  const n = p.batch * p.M * p.N;
  if (p.accumulate && !out) throw new Error("matmul: accumulate needs an output to add to");
  if (out && out.length < n) {
    throw new RangeError(`matmul: output of ${out.length} elements, the product has ${n}`);
  }
  if (p.alpha !== undefined && !Number.isFinite(p.alpha)) {
    throw new RangeError(`matmul: alpha must be finite, got ${p.alpha}`);
  }
}
