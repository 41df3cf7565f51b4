/**
 * The WebGPU backend's own surface, for benchmarks, kernel tests and tuning: the backend class,
 * its engine (device, buffer pool, pipelines, profiler), the matmul kernel variants and their
 * tuning, and the attention tile configuration. Everyday use needs none of it: `getDevice()`
 * (lib/mod.ts) picks WebGPU when an adapter exists. Import as `@loralab/loralab/webgpu`.
 *
 * @example
 * ```ts
 * import { getDevice } from "../../mod.ts";
 * import { MATMUL_VARIANTS, WebGpuBackend } from "./mod.ts";
 * const dev = await getDevice();
 * if (dev instanceof WebGpuBackend) console.log(dev.description, MATMUL_VARIANTS);
 * ```
 *
 * @module
 */

export { WebGpuBackend } from "./webgpu_backend.ts";
export { GpuEngine, type Kernel, type KernelTime } from "./engine.ts";
export { MATMUL_VARIANTS, type MatmulVariant } from "./kernels/matmul.ts";
export {
  ATTENTION_KERNELS_ENV,
  type AttentionTileConfig,
  attentionTileConfig,
  type TileShape,
} from "./kernels/attention_tiled.ts";
export { DEFAULT_TUNE_SHAPES, type MatmulShape, type MatmulTuneResult } from "./matmul_tuning.ts";

// Types from the rest of loralab that this module's API mentions.
export type * from "../backend.ts";
export type * from "../../tensor.ts";
export type { Rng } from "../../rng.ts";
