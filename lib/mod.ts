/**
 * loralab: LoRA and QLoRA fine-tuning on WebGPU, with a plain-TypeScript CPU twin.
 *
 * The everyday API: devices and tensors, ops and autograd, optimizers, models (GPT-2, Llama),
 * fine-tuning methods (`preparePeft`), tokenizers and data; quantization and file formats as the
 * `quant` and `io` namespaces. Deeper entry points (deno.json "exports"): `./train`, `./io`,
 * `./quant`, `./peft`, `./data`, `./viz`, `./webgpu`.
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

// Devices and tensors.
export * from "./backend/backend.ts";
export * from "./backend/device.ts";
export { CpuBackend } from "./backend/cpu/cpu_backend.ts";
export * from "./tensor.ts";
export * from "./rng.ts";
// Ops, autograd, optimizers.
export * from "./ops/mod.ts";
export * from "./autograd/tape.ts";
export * from "./optim/mod.ts";
// Models, fine-tuning methods, data.
export * from "./nn/mod.ts";
export * as models from "./models/mod.ts";
export * from "./peft/mod.ts";
export * from "./data/mod.ts";
// Quantization and files, as namespaces (also `@loralab/loralab/quant`, `…/io`).
export * as quant from "./quant/mod.ts";
export * as io from "./io/mod.ts";
// Types the API above mentions from the internals (quantized weights, their layout).
export type { DeviceWeight } from "./quant/device_weight.ts";
export type { PackedArrays, PackedLayout } from "./quant/packed.ts";
export type { QuantFormat } from "./quant/weight.ts";
// The WebGPU backend's internals (kernel variants, tuning, engine) are `@loralab/loralab/webgpu`
// (lib/backend/webgpu/mod.ts); training runs are `@loralab/loralab/train`.
