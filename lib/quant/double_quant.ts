/**
 * Double quantization of the per-block absmax constants, exactly as bitsandbytes does it
 * (`quantize_4bit(..., compress_statistics=True)`).
 *
 * The constants a_0 … a_{n-1} (f32, all >= 0) have their mean subtracted (the f32 `offset`);
 * the residuals r_i = f32(a_i - offset) are quantized in blocks of 256 (default) by 8-bit
 * blockwise quantization with bitsandbytes' signed dynamic map ({@link dynamicMap}): each block
 * keeps its f32 absmax s_b = max |r_i| and each residual the index (0..255) of the map value
 * nearest to f32(r_i · f32(1 / s_b)) (f32 distances, ties to the smaller index, as bitsandbytes'
 * reference `torch.argmin`). Reconstructed:
 *
 *     a_i ≈ f32(f32(map[q_i] · s_b) + offset)
 *
 * as bitsandbytes' `dequantize_blockwise` then `absmax += offset` (no clamp at 0: a block whose
 * constant is reconstructed slightly negative flips sign there too, by at most one map step).
 *
 * The map is non-linear: 7 decades of values below 1, so small residuals of a block with one
 * huge constant (an outlier block) keep their relative precision, where a linear int8 code
 * rounds them to 0 (the earlier loralab scheme, removed: with 0.01% outliers it raised the NF4
 * weight error by a third).
 *
 * @module
 */

/** Default number of absmax constants per nested block (bitsandbytes' 256). */
export const DQ_BLOCK_SIZE = 256;

const f = Math.fround;

/**
 * torch.linspace(start, end, steps) in float32 as PyTorch computes it: an f32 step, the first
 * half counted up from start, the second half down from end, each `start + step·i` one fused
 * multiply-add (one rounding; the product of an f32 and a small integer is exact in float64).
 * With these steps the map equals bitsandbytes' published table value for value.
 */
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = f(start), e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < half ? f(s + step * i) : f(e - step * (steps - i - 1));
  }
  return out;
}

/**
 * bitsandbytes' `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`: for
 * i = 0 … 6, the midpoints of `linspace(0.1, 1, 2^i + 1)` times ±10^(i-6), then 0 and 1, sorted:
 * 256 values in [-0.993, 1], in f32 (each step rounded as PyTorch's f32 tensors round it; checked
 * against the table bitsandbytes returns, value for value, in tests/quant/double_quant.test.ts).
 *
 * A checkpoint stores its own map (`nested_quant_map`), which loading always uses; this one is
 * for quantizing here.
 */
export function buildDynamicMap(): Float32Array {
  const data: number[] = [];
  for (let i = 0; i < 7; i++) {
    const b = linspaceF32(0.1, 1, 2 ** i + 1);
    const scale = f(10 ** (i - 6));
    for (const sign of [1, -1]) {
      for (let j = 0; j + 1 < b.length; j++) {
        const mean = f(f(b[j] + b[j + 1]) / 2);
        data.push(f(sign * f(scale * mean)));
      }
    }
  }
  data.push(0, 1);
  if (data.length !== 256) throw new Error(`dynamic map: ${data.length} values, not 256`);
  return Float32Array.from(data.sort((x, y) => x - y));
}

const DYNAMIC_MAP = buildDynamicMap();

/** The shared dynamic map (internal: callers must not write to it). */
export function sharedDynamicMap(): Float32Array {
  return DYNAMIC_MAP;
}

/** A fresh copy of the signed dynamic map: Float32Array [256], ascending. */
export function dynamicMap(): Float32Array {
  return DYNAMIC_MAP.slice();
}

/** Whether `map` holds exactly (bit for bit) the values of {@link dynamicMap}. */
export function isStandardDynamicMap(map: Float32Array): boolean {
  if (map === DYNAMIC_MAP) return true;
  if (map.length !== 256) return false;
  for (let i = 0; i < 256; i++) if (!Object.is(map[i], DYNAMIC_MAP[i])) return false;
  return true;
}

/**
 * Index of the value of an ascending `map` nearest to the f32 `x`, by f32 distance |x - map[j]|
 * with ties to the smaller index: `torch.argmin(|x - code|)`, bitsandbytes' reference
 * quantizer. (f32 rounding is monotone, so the minimum is next to x's place in the map.)
 */
export function nearestInMap(map: Float32Array, x: number): number {
  let lo = 0, hi = map.length - 1; // binary search for the first value >= x
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (map[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  const d = (j: number) => f(Math.abs(f(x - map[j])));
  let best = lo;
  while (best > 0 && d(best - 1) <= d(best)) best--; // equal distances: the first index wins
  return best;
}

/** Absmax constants stored as bitsandbytes stores them: 8-bit map indices + nested absmax + offset. */
export class DoubleQuantAbsmax {
  /** Indices into `map`, one per constant: Uint8Array [length]. */
  readonly codes: Uint8Array;
  /** Absmax of each nested block of residuals: Float32Array [ceil(length / blockSize)]. */
  readonly scales: Float32Array;
  /** The offset (f32 mean of the constants) added back: Float32Array [1]. */
  readonly offset: Float32Array;
  /** The 8-bit map: Float32Array [256] (the shared {@link dynamicMap} unless loaded otherwise). */
  readonly map: Float32Array;
  /** Constants per nested block (256 by default). */
  readonly blockSize: number;

  /** Wraps existing arrays; see {@link doubleQuantize} to build one. */
  constructor(
    codes: Uint8Array,
    scales: Float32Array,
    offset: Float32Array,
    blockSize: number,
    map: Float32Array = DYNAMIC_MAP,
  ) {
    if (!Number.isInteger(blockSize) || blockSize < 1) {
      throw new Error(`DoubleQuantAbsmax: block size ${blockSize} must be an integer >= 1`);
    }
    if (scales.length !== Math.ceil(codes.length / blockSize) || offset.length !== 1) {
      throw new Error("DoubleQuantAbsmax: array lengths do not match");
    }
    if (map.length !== 256) throw new Error(`DoubleQuantAbsmax: map has ${map.length} values`);
    this.codes = codes;
    this.scales = scales;
    this.offset = offset;
    this.blockSize = blockSize;
    this.map = isStandardDynamicMap(map) ? DYNAMIC_MAP : map;
  }

  /** Number of constants. */
  get length(): number {
    return this.codes.length;
  }

  /**
   * Bytes held: codes + nested absmax + offset; plus the map's 1 KiB only when it is not the
   * shared standard one (like the 16-entry 4-bit tables, a format constant is not counted).
   */
  get bytes(): number {
    return this.codes.byteLength + this.scales.byteLength + this.offset.byteLength +
      (this.map === DYNAMIC_MAP ? 0 : this.map.byteLength);
  }

  /** The reconstructed constants f32(f32(map[q] · s_b) + offset): Float32Array [length]. */
  dequantize(): Float32Array {
    const out = new Float32Array(this.length);
    const off = this.offset[0];
    for (let i = 0; i < this.length; i++) {
      out[i] = f(this.map[this.codes[i]] * this.scales[Math.floor(i / this.blockSize)]) + off;
    }
    return out;
  }
}

/**
 * Double-quantizes absmax constants (see the module docs).
 *
 * @param absmax Float32Array [n], finite and >= 0
 * @param blockSize constants per nested block, an integer >= 1 (default 256)
 */
export function doubleQuantize(absmax: Float32Array, blockSize = DQ_BLOCK_SIZE): DoubleQuantAbsmax {
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new Error(`doubleQuantize: block size ${blockSize} must be an integer >= 1`);
  }
  let sum = 0; // float64 accumulation, rounded once
  for (let i = 0; i < absmax.length; i++) {
    const a = absmax[i];
    if (!Number.isFinite(a) || a < 0) throw new Error(`doubleQuantize: absmax ${i} is ${a}`);
    sum += a;
  }
  const offset = new Float32Array([absmax.length > 0 ? sum / absmax.length : 0]);
  const r = new Float32Array(absmax.length); // residuals a - offset, rounded to f32 (torch: absmax -= offset)
  for (let i = 0; i < r.length; i++) r[i] = absmax[i] - offset[0];
  const codes = new Uint8Array(absmax.length);
  const scales = new Float32Array(Math.ceil(absmax.length / blockSize));
  const zero = nearestInMap(DYNAMIC_MAP, 0);
  for (let b = 0; b < scales.length; b++) {
    const start = b * blockSize, end = Math.min(start + blockSize, r.length);
    let s = 0;
    for (let i = start; i < end; i++) s = Math.max(s, Math.abs(r[i]));
    scales[b] = s;
    const inv = f(1 / s); // bitsandbytes multiplies by the f32 reciprocal of the block absmax
    for (let i = start; i < end; i++) {
      codes[i] = s > 0 ? nearestInMap(DYNAMIC_MAP, f(r[i] * inv)) : zero;
    }
  }
  return new DoubleQuantAbsmax(codes, scales, offset, blockSize);
}
