/**
 * The halves of quantized weights, one line per backend kind (as candle's `QStorage` has one arm
 * per device). A backend that runs quantized products adds `qmatmul_<kind>.ts` and a line here.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { QmatmulBackend } from "./qmatmul_backend.ts";
import { CPU_QMATMUL } from "./qmatmul_cpu.ts";
import { WEBGPU_QMATMUL } from "./qmatmul_webgpu.ts";

/** Each backend kind's half of `toDevice`, `dequantizeOnDevice` and `qmatmul`. */
export const IMPL: Readonly<Record<Backend["kind"], QmatmulBackend>> = Object.freeze({
  cpu: CPU_QMATMUL,
  webgpu: WEBGPU_QMATMUL,
});

/** The half of `dev`'s kind; throws `message` for a kind without one. */
export function implOf(dev: Backend, message: string): QmatmulBackend {
  const impl = Object.hasOwn(IMPL, dev.kind) ? IMPL[dev.kind] : undefined;
  if (!impl) throw new Error(message);
  return impl;
}
