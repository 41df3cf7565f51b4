/**
 * Quantize a weight straight onto a backend: on WebGPU the 4-bit formats are quantized by a
 * kernel on the device (`quantize_webgpu.ts`; the f32 weights go up once and the codes stay
 * there), everything else is `toDevice(dev, quantize(…))`, the CPU quantizer then an upload.
 * One line per backend kind that quantizes on its device, as `qmatmul_impl.ts` has one per kind
 * that runs the products.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { type Format4, isFormat4 } from "./codes.ts";
import { type DeviceWeight, toDevice } from "./device_weight.ts";
import type { QuantizeOptions } from "./formats/format.ts";
import { quantize } from "./quantize.ts";
import { quantize4OnWebgpu } from "./quantize_webgpu.ts";
import type { QuantFormat } from "./weight.ts";

/** A backend's own 4-bit quantizer: W [N, K] f32 on the host → a weight held by `dev`. */
export type DeviceQuantizer4 = (
  dev: Backend,
  weights: Float32Array,
  shape: readonly [number, number],
  format: Format4,
  opts: QuantizeOptions,
) => Promise<DeviceWeight>;

/** The backend kinds that quantize 4-bit formats on their device. */
export const DEVICE_QUANTIZERS: Readonly<Partial<Record<Backend["kind"], DeviceQuantizer4>>> =
  Object.freeze({ webgpu: quantize4OnWebgpu });

/**
 * W [N, K] (out × in, Float32Array [N·K] row-major) stored in `format` on `dev`: quantized on
 * the device where its backend can (4-bit formats on WebGPU; codes equal to the CPU's except at
 * near-ties, see `quantize_webgpu.ts`), else quantized here and uploaded.
 */
export async function quantizeToDevice(
  dev: Backend,
  weights: Float32Array,
  shape: readonly [number, number],
  format: QuantFormat,
  opts: QuantizeOptions = {},
): Promise<DeviceWeight> {
  const onDevice = Object.hasOwn(DEVICE_QUANTIZERS, dev.kind) ? DEVICE_QUANTIZERS[dev.kind] : null;
  if (onDevice && isFormat4(format)) {
    return await onDevice(dev, weights, shape, format, opts);
  }
  return toDevice(dev, quantize(weights, shape, format, opts));
}
