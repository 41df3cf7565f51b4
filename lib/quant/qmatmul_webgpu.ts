/**
 * The WebGPU half of quantized weights (candle's `quantized/metal.rs`): each packed array becomes
 * one storage buffer, and the kernels of `lib/backend/webgpu/kernels/qmatmul.ts` (and the f32
 * matmul's tiled variants) de-quantize W as they read it, with the WGSL decoder that the weight's
 * format hands over ({@link qWeightSpec}). The only file of `lib/quant/` that knows the WebGPU
 * backend.
 *
 * @module
 */

import type { Backend, MatmulParams } from "../backend/backend.ts";
import { type GpuEngine, groups1d } from "../backend/webgpu/engine.ts";
import {
  matmulGroups,
  matmulKernel,
  matmulParams,
  matmulSpec,
} from "../backend/webgpu/kernels/matmul.ts";
import {
  MV_ROWS,
  qDequantKernel,
  qDequantParams,
  qMatvecGroups,
  qMatvecKernel,
  qMatvecParams,
  type QWeightSpec,
} from "../backend/webgpu/kernels/qmatmul.ts";
import { type GpuStorage, WebGpuBackend } from "../backend/webgpu/webgpu_backend.ts";
import { Tensor } from "../tensor.ts";
import { isStandardDynamicMap, sharedDynamicMap } from "./double_quant.ts";
import type { KernelLayout, PackedWeight } from "./formats/format.ts";
import { FORMATS } from "./formats/registry.ts";
import type { HeldWeight, HeldWeightView, QmatmulBackend, QmatmulCall } from "./qmatmul_backend.ts";

/**
 * What the kernels bake in about a weight of this layout: the pipeline-key part
 * `<format>:b<blockSize>:dq<dqBlockSize>` (then `:wt` when the code table is in workgroup
 * memory), the format's binding count and its WGSL decoder. `codeTable`: see `WgslOptions`.
 */
export function qWeightSpec(
  l: KernelLayout,
  codeTable: "private" | "workgroup" = "private",
): QWeightSpec {
  const { format, blockSize, dqBlockSize } = l;
  const f = FORMATS[format];
  const baked: KernelLayout = { format, blockSize, dqBlockSize }; // never the shape
  const shared = codeTable === "workgroup" && f.table !== null;
  return {
    key: `${format}:b${blockSize}:dq${dqBlockSize}${shared ? ":wt" : ""}`,
    bindings: f.bindings(baked),
    setup: shared,
    decodeWgsl: (b0) => f.wgsl(baked, b0, { codeTable: shared ? "workgroup" : "private" }),
  };
}

function gpuOf(dev: Backend, what: string): WebGpuBackend {
  if (!(dev instanceof WebGpuBackend)) throw new Error(what);
  return dev;
}

// One buffer of the standard dynamic map per engine, shared by every double-quantized weight.
const MAP_BUFFERS = new WeakMap<object, GPUBuffer>();

function sharedMapBuffer(engine: GpuEngine): GPUBuffer {
  let b = MAP_BUFFERS.get(engine);
  if (!b) {
    // Outside the pool and its live-byte count: it lives as long as the engine.
    b = engine.device.createBuffer({
      size: sharedDynamicMap().byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    engine.write(b, sharedDynamicMap());
    MAP_BUFFERS.set(engine, b);
  }
  return b;
}

/** One storage buffer per packed array, in binding order (data, absmax, dqCodes, dqScales, dqMap). */
function upload(dev: Backend, p: PackedWeight): HeldWeight {
  const { data, ...side } = p.arrays;
  return holdResident(dev, [], [data, side.absmax, side.dqCodes, side.dqScales], side.dqMap);
}

/**
 * What a `DeviceWeight` built from buffers already on the device owns (the on-device quantizer's
 * codes, `quantize_webgpu.ts`): `resident` first, taken over as they are, then one uploaded
 * buffer per non-null array of `parts`, then the map (the shared one when it is the standard
 * dynamic map). Binding order is the order given.
 */
export function holdResident(
  dev: Backend,
  resident: readonly GPUBuffer[],
  parts: readonly (ArrayBufferView | null)[],
  dqMap: Float32Array | null,
): HeldWeight {
  const engine = gpuOf(dev, `toDevice: unknown backend ${dev.kind}`).engine;
  const buffers: GPUBuffer[] = [...resident];
  for (const a of parts) {
    if (!a) continue;
    const buf = engine.alloc(a.byteLength);
    engine.write(buf, a);
    buffers.push(buf);
  }
  let borrowed: GPUBuffer | null = null;
  if (dqMap) {
    if (isStandardDynamicMap(dqMap)) {
      borrowed = sharedMapBuffer(engine);
      buffers.push(borrowed);
    } else {
      const buf = engine.alloc(dqMap.byteLength);
      engine.write(buf, dqMap);
      buffers.push(buf);
    }
  }
  return { gpu: buffers, borrowed, release: (b) => engine.release(b) };
}

/** W [N, K] as an f32 tensor, by `qDequantKernel`. */
function dequantize(w: HeldWeightView): Tensor {
  const dev = w.backend;
  const { N, K } = w.layout;
  const gpu = gpuOf(dev, "dequantizeOnDevice: unknown backend");
  const engine = gpu.engine;
  const out = engine.alloc(N * K * 4);
  engine.run(
    qDequantKernel(qWeightSpec(w.layout, gpu.codeTable())),
    [out, ...w.gpuBuffers()],
    qDequantParams({ numel: N * K, K }),
    groups1d(N * K),
  );
  return new Tensor(dev, { backendId: dev.id, buffer: out } as GpuStorage, [N, K], "f32");
}

/** The product: `qMatvecKernel` for few rows, else a tiled f32 matmul variant decoding W. */
function qmatmul(c: QmatmulCall): Tensor {
  const { x, w, bias, transW, M, what } = c;
  const [N, K] = [w.layout.N, w.layout.K];
  const inner = transW ? N : K, outs = transW ? K : N;
  const dev = x.backend;
  const gpu = gpuOf(dev, `${what}: unknown backend`);
  const engine = gpu.engine;
  const xb = (x.storage as GpuStorage).buffer;
  const out = engine.alloc(Math.max(1, M * outs) * 4);
  const bufs = [xb, bias ? (bias.storage as GpuStorage).buffer : xb, out, ...w.gpuBuffers()];
  const spec = qWeightSpec(w.layout, gpu.codeTable());
  if (M > 0 && c.matvec) {
    const groups = qMatvecGroups(N, K, transW);
    if (groups[0] > 65535) throw new RangeError(`${what}: too many outputs for one dispatch`);
    const hasBias = !!bias;
    for (let x0 = 0; x0 < M; x0 += MV_ROWS) {
      const rows = Math.min(MV_ROWS, M - x0);
      const k = qMatvecKernel(spec, transW, rows, K % 8 === 0);
      engine.run(k, bufs, qMatvecParams({ rows, outputs: outs, inner, K, hasBias, x0 }), groups);
    }
  } else if (M > 0) {
    // The f32 matmul's tiled variants with W de-quantized as its k-slices are staged: y = x · Wᵀ
    // is op(B) = Wᵀ for a B stored [N, K] (transB); y = x · W reads W [N, K] as a [K', N'] B.
    const p: MatmulParams = {
      batch: 1,
      M,
      N: outs,
      K: inner,
      transA: false,
      transB: !transW,
      strideA: 0,
      strideB: 0,
    };
    const v = gpu.matmulVariantFor(p);
    const groups = matmulGroups(v, p);
    if (groups[0] > 65535 || groups[1] > 65535) {
      throw new RangeError(`${what}: too large for one dispatch`);
    }
    engine.run(
      matmulKernel(v, matmulSpec(p), spec),
      bufs,
      matmulParams({ ...p, hasBias: !!bias, alpha: 1, accumulate: false }),
      groups,
    );
  }
  return new Tensor(dev, { backendId: dev.id, buffer: out } as GpuStorage, c.outShape, "f32");
}

/** The WebGPU half of quantized weights (`IMPL.webgpu`). */
export const WEBGPU_QMATMUL: QmatmulBackend = { upload, dequantize, qmatmul };
