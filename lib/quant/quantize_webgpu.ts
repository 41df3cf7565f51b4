/**
 * Blockwise 4-bit quantization on the WebGPU device (issue 16: quantize on the GPU when the
 * backend is WebGPU). The f32 weights are uploaded once (in chunks of whole blocks when they
 * exceed the adapter's largest buffer, `splitBytes`), `quantize4Kernel`
 * (`lib/backend/webgpu/kernels/quantize4.ts`) writes the packed codes and the absmax into
 * buffers that become the {@link DeviceWeight}'s own: the codes never come back to the host.
 * With double quantization the absmax [numBlocks] (one f32 per block, 1/16 of the codes) is read
 * back, double-quantized on the CPU (`doubleQuantize`, bitsandbytes' scheme) and its side arrays
 * uploaded as `toDevice` uploads them.
 *
 * Twin: `quantizeBlockwise4` then `toDevice`. The absmax (and so every double-quantization
 * array) is equal bit for bit; a code may differ only where w / absmax lies within 2^-22 of a
 * midpoint between two code values, as the kernel divides in f32 and the CPU in float64 (see the
 * kernel's module docs; tests/quant/quantize_webgpu.test.ts checks both on random data).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import {
  quantize4Blocks,
  quantize4Kernel,
  quantize4Params,
  type Quantize4Spec,
} from "../backend/webgpu/kernels/quantize4.ts";
import { groups1d } from "../backend/webgpu/engine.ts";
import { WebGpuBackend } from "../backend/webgpu/webgpu_backend.ts";
import { splitBytes } from "../tensor.ts";
import { checkFinite, checkShape } from "./check.ts";
import { codeThresholds } from "./code_thresholds.ts";
import { type Format4, nearestCode, sharedTable } from "./codes.ts";
import { DeviceWeight } from "./device_weight.ts";
import { doubleQuantize } from "./double_quant.ts";
import {
  checkBlockSize,
  DEFAULT_BLOCK_SIZE,
  packDoubleQuant,
  QUANTIZE_FN,
} from "./formats/blockwise4.ts";
import type { PackedLayout, QuantizeOptions } from "./formats/format.ts";
import { packedBytes } from "./packed.ts";
import { holdResident } from "./qmatmul_webgpu.ts";

/** What the quantizer kernel bakes in for a format and block size. */
export function quantize4Spec(format: Format4, blockSize: number): Quantize4Spec {
  const table = sharedTable(format);
  const t = codeThresholds(table);
  return {
    key: `${format}:b${blockSize}`,
    blockSize,
    thresholds: t.thresholds,
    codes: t.codes,
    zeroCode: nearestCode(table, 0),
  };
}

/**
 * Quantizes a 2-D weight W [N, K] (out × in, Float32Array [N·K] row-major) to `format` on a
 * WebGPU backend and keeps it there: the same weight `toDevice(dev, quantize(w, shape, format,
 * opts))` gives, up to the codes of near-ties (module docs). Throws as the CPU quantizer does on
 * a bad shape, block size or non-finite weight; a RangeError when the codes exceed the adapter's
 * largest buffer.
 */
export async function quantize4OnWebgpu(
  dev: Backend,
  weights: Float32Array,
  shape: readonly [number, number],
  format: Format4,
  opts: QuantizeOptions = {},
): Promise<DeviceWeight> {
  if (!(dev instanceof WebGpuBackend)) throw new Error(`quantize4OnWebgpu: ${dev.kind} backend`);
  const fn = QUANTIZE_FN[format];
  const bs = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  checkBlockSize(fn, bs);
  const numel = checkShape(fn, shape, weights.length);
  checkFinite(fn, weights);
  const engine = dev.engine;
  const numBlocks = Math.ceil(numel / bs);
  const words = (numBlocks * bs) / 8;
  const Q = engine.alloc(words * 4); // codes [numBlocks · bs / 8]
  const S = engine.alloc(numBlocks * 4); // absmax [numBlocks]
  const kernel = quantize4Kernel(quantize4Spec(format, bs));
  // Chunks of whole blocks that fit one buffer (the last one may end in a ragged block).
  const chunk = Math.max(bs, Math.floor(splitBytes(dev) / 4 / bs) * bs);
  for (let off = 0; off < numel; off += chunk) {
    const n = Math.min(chunk, numel - off);
    const W = engine.alloc(n * 4);
    engine.write(W, weights.subarray(off, off + n));
    engine.run(
      kernel,
      [W, Q, S],
      quantize4Params({ numel: n, block0: off / bs }),
      groups1d(quantize4Blocks(n, bs)),
    );
    engine.release(W); // safe: the next write is queued after this dispatch
  }
  const [N, K] = shape;
  if (!opts.doubleQuant) {
    const layout: PackedLayout = { format, N, K, blockSize: bs, dqBlockSize: 0 };
    const held = holdResident(dev, [Q, S], [], null);
    return new DeviceWeight(dev, layout, words * 4 + numBlocks * 4, held);
  }
  const absmax = new Float32Array(await engine.read(S, numBlocks * 4)); // [numBlocks]
  engine.release(S);
  const dq = doubleQuantize(absmax, opts.dqBlockSize);
  const side = packDoubleQuant(dq);
  const layout: PackedLayout = { format, N, K, blockSize: bs, dqBlockSize: dq.blockSize };
  const held = holdResident(dev, [Q], [side.dqCodes!, side.dqScales!], dq.map);
  const bytes = words * 4 + packedBytes({ data: new Uint32Array(0), ...side });
  return new DeviceWeight(dev, layout, bytes, held);
}
