/**
 * The device layout of a frozen weight W [N, K] (out × in, PyTorch Linear): every format as u32
 * words plus f32 side arrays, exactly the buffers a WGSL kernel binds, and the float32 decoder
 * that is the CPU twin of the WGSL one. Both come from the weight's format
 * (`FORMATS[format].pack` / `.decoder`, `formats/registry.ts`); each format file describes its
 * words and side arrays, next to its two decoders.
 *
 * Side arrays, in binding order: `absmax` holds int8's scale ([1], or [N] per row) or the 4-bit
 * blocks' absmax ([numBlocks]); with double quantization (bitsandbytes' scheme,
 * `double_quant.ts`) `dqCodes` packs the 8-bit map indices four per word (index 4w+j in byte j),
 * `dqScales` is [offset, nested_absmax_0, …, nested_absmax_{S-1}] and `dqMap` the 256-entry f32
 * map.
 *
 * The decoder does each f32 operation of the kernel in the same order, rounding to f32 after
 * each step, so the CPU twin and the WGSL kernel agree bit for bit wherever the GPU rounds
 * correctly (everything except the division by 127 of int8, which WGSL allows to be 2.5 ulp
 * off).
 *
 * @module
 */

import { isStandardDynamicMap } from "./double_quant.ts";
import {
  type Decoder,
  type PackedArrays,
  type PackedLayout,
  type PackedWeight,
  packShape,
  unsupportedContainer,
} from "./formats/format.ts";
import { formatSpec } from "./formats/registry.ts";
import type { QuantizedWeight } from "./weight.ts";

export type { Decoder, PackedArrays, PackedLayout, PackedWeight };
export { pack16, packInt8 } from "./pack.ts";

/**
 * Lays out a quantized 2-D weight [N, K] for a device. Arrays are packed copies (the f32 and
 * 4-bit words are shared with `q`, not copied: a frozen weight is never written).
 */
export function packWeight(q: QuantizedWeight): PackedWeight {
  packShape(q); // 2-D [out, in], or a RangeError
  const spec = formatSpec(q.format);
  if (!spec) throw unsupportedContainer(q);
  return spec.pack(q);
}

/**
 * Bytes of the arrays: what a device holds for the weight (each array padded to 4 bytes). The
 * shared standard dynamic map is one buffer per device, not counted per weight.
 */
export function packedBytes(a: PackedArrays): number {
  const map = a.dqMap && !isStandardDynamicMap(a.dqMap) ? a.dqMap.byteLength : 0;
  return a.data.byteLength + (a.absmax?.byteLength ?? 0) + (a.dqCodes?.byteLength ?? 0) +
    (a.dqScales?.byteLength ?? 0) + map;
}

/** Builds the {@link Decoder} of a packed weight (its format's CPU twin of the WGSL `wval`). */
export function makeDecoder(p: PackedWeight): Decoder {
  const spec = formatSpec(p.layout.format);
  if (!spec) throw new TypeError(`makeDecoder: unknown format ${p.layout.format}`);
  return spec.decoder(p);
}
