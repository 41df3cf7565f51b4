/**
 * loralab: LoRA and QLoRA fine-tuning on WebGPU, with a plain-TypeScript CPU twin.
 *
 * @example
 * ```ts
 * import { getDevice, matmul, Tensor } from "./lib/mod.ts";
 * const dev = await getDevice();
 * const a = Tensor.randn([64, 32], { device: dev, seed: 1 });
 * const b = Tensor.randn([32, 16], { device: dev, seed: 2 });
 * console.log(await matmul(a, b).toArray());
 * ```
 *
 * @module
 */

export * from "./backend/backend.ts";
export * from "./backend/device.ts";
export { CpuBackend } from "./backend/cpu/cpu_backend.ts";
export { WebGpuBackend } from "./backend/webgpu/webgpu_backend.ts";
export { MATMUL_VARIANTS, type MatmulVariant } from "./backend/webgpu/kernels/matmul.ts";
export {
  ATTENTION_KERNELS_ENV,
  type AttentionTileConfig,
  attentionTileConfig,
  type TileShape,
} from "./backend/webgpu/kernels/attention_tiled.ts";
export {
  DEFAULT_TUNE_SHAPES,
  type MatmulShape,
  type MatmulTuneResult,
} from "./backend/webgpu/matmul_tuning.ts";
export { GpuEngine, type Kernel, type KernelTime } from "./backend/webgpu/engine.ts";
export * from "./tensor.ts";
export * from "./rng.ts";
export * from "./ops/mod.ts";
export * from "./autograd/tape.ts";
export * from "./optim/mod.ts";
export * from "./nn/mod.ts";
export * as models from "./models/mod.ts";
export * from "./peft/mod.ts";
export * as quant from "./quant/mod.ts";
export { DeviceWeight } from "./quant/device_weight.ts";
export type { PackedArrays, PackedLayout } from "./quant/packed.ts";
export type { QuantFormat } from "./quant/weight.ts";
export * as io from "./io/mod.ts";
export * from "./data/mod.ts";
