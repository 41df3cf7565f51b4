/**
 * The common face of every quantized weight container.
 *
 * @module
 */

/** Storage formats of a weight. */
export type QuantFormat =
  | "f32"
  | "f16"
  | "bf16"
  | "int8"
  | "int8-row"
  | "nf4"
  | "fp4"
  | "int4";

/**
 * A weight held in some storage format.
 *
 * `bytes` is the sum of the `byteLength`s of the typed arrays the object actually holds
 * (codes, scales, double-quantization codes/nested absmax/offset); constant code tables shared by
 * all weights and the JS shape array are not counted.
 */
export interface QuantizedWeight {
  /** The storage format. */
  readonly format: QuantFormat;
  /** The logical shape, e.g. [out, in]; its product is `numel`. */
  readonly shape: readonly number[];
  /** Number of weights. */
  readonly numel: number;
  /** Bytes held in typed arrays. */
  readonly bytes: number;
  /** `bytes * 8 / numel`. */
  readonly bitsPerParameter: number;
  /** The weights as f32, Float32Array [numel], row-major like the input. */
  dequantize(): Float32Array;
}
