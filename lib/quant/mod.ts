/**
 * Quantized storage formats for weights, on the CPU in plain TypeScript: f16/bf16, int8
 * absmax (per tensor or per row), 4-bit blockwise NF4/FP4/int4 with optional double
 * quantization of the absmax constants, packed u32 codes for GPU kernels, and an error study.
 * Each format is one file of `formats/` (container, packing, CPU and WGSL decoders side by side)
 * and one line of {@link FORMATS}.
 *
 * @example
 * ```ts
 * import { quantize } from "./mod.ts";
 * const w = new Float32Array(1024).map((_, i) => Math.sin(i));
 * const q = quantize(w, [32, 32], "nf4", { blockSize: 64, doubleQuant: true });
 * q.bitsPerParameter; // bits per weight, from the arrays held
 * q.dequantize(); // Float32Array [1024]
 * ```
 *
 * @module
 */

export type { QuantFormat, QuantizedWeight } from "./weight.ts";
export {
  bf16BitsToF32,
  bf16BitsToF32Bits,
  f16BitsToF32,
  f16BitsToF32Bits,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  f32ToBf16Bits,
  f32ToF16Bits,
  fromBf16Bits,
  fromF16Bits,
  toBf16Bits,
  toF16Bits,
} from "./f16.ts";
export {
  type Decoder,
  type KernelLayout,
  type PackedArrays,
  type PackedLayout,
  type PackedWeight,
  type QuantFormatSpec,
  type QuantizeOptions,
  type WgslOptions,
} from "./formats/format.ts";
export { BASE_QUANTS, type BaseQuant, FORMATS, formatSpec } from "./formats/registry.ts";
export { F16Weight, F32Weight, quantizeBF16, quantizeF16 } from "./formats/float.ts";
export { Int8Weight, quantizeInt8, quantizeInt8Rows } from "./formats/int8.ts";
export {
  codeSearch,
  codeTable,
  type Format4,
  FP4_VALUES,
  INT4_VALUES,
  isFormat4,
  nearestCode,
  NF4_VALUES,
} from "./codes.ts";
export { nibbleAt, nibblesToBytes, pack16, packInt8, packNibbles, unpackNibbles } from "./pack.ts";
export {
  type Blockwise4Options,
  Blockwise4Weight,
  checkBlockSize,
  DEFAULT_BLOCK_SIZE,
  quantizeBlockwise4,
  quantizeFP4,
  quantizeInt4,
  quantizeNF4,
} from "./formats/blockwise4.ts";
export {
  buildDynamicMap,
  DoubleQuantAbsmax,
  doubleQuantize,
  DQ_BLOCK_SIZE,
  dynamicMap,
  isStandardDynamicMap,
  nearestInMap,
} from "./double_quant.ts";
export { quantize } from "./quantize.ts";
export {
  type ErrorStats,
  errorStats,
  quantizationError,
  type QuantizationReport,
} from "./error.ts";
export { makeDecoder, packedBytes, packWeight } from "./packed.ts";
export { DeviceWeight, toDevice } from "./device_weight.ts";
export { DEVICE_QUANTIZERS, type DeviceQuantizer4, quantizeToDevice } from "./quantize_device.ts";
export {
  dequantizeOnDevice,
  MATVEC_MAX_ROWS,
  qmatmul,
  type QmatmulOptions,
  type QmatmulPath,
} from "./qmatmul.ts";
export { dequantizeCpu, qmatmulCpu, qmatmulCpuPanels } from "./qmatmul_cpu.ts";
export {
  type FastMatvecOptions,
  hasFastMatvec,
  qmatvecCpuFast,
  setColBytes,
} from "./qmatvec_cpu_fast.ts";
export { setMatvecThreads } from "./qmatvec_threads.ts";
export type { HeldWeight, HeldWeightView, QmatmulBackend, QmatmulCall } from "./qmatmul_backend.ts";
// Types from the rest of loralab that the device weights take and return, re-exported (as
// types only) so that this module's documentation is complete on its own.
export type * from "../backend/backend.ts";
export type * from "../tensor.ts";
export type * from "../rng.ts";
