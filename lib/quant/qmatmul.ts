/**
 * Products with a frozen quantized weight W [N, K] held by a {@link DeviceWeight}:
 * `x · Wᵀ` (a Linear layer's forward) and `x · W` (the backward dX = dY · W that LoRA needs
 * through a frozen base; no gradient of W is ever formed). On WebGPU the kernels de-quantize W
 * inside the kernel; on the CPU one row at a time.
 *
 * @module
 */

import type { CpuStorage } from "../backend/cpu/cpu_backend.ts";
import type { MatmulParams } from "../backend/backend.ts";
import { f32Bits, groups1d } from "../backend/webgpu/engine.ts";
import { matmulGroups, matmulKernel, matmulSpec } from "../backend/webgpu/kernels/matmul.ts";
import {
  MV_ROWS,
  MV_WG_ROWS,
  MVT_WG_COLS,
  qDequantKernel,
  qMatvecKernel,
  type QWeightSpec,
} from "../backend/webgpu/kernels/qmatmul.ts";
import { type GpuStorage, WebGpuBackend } from "../backend/webgpu/webgpu_backend.ts";
import { fmtShape, Tensor } from "../tensor.ts";
import { sharedTable } from "./codes.ts";
import type { DeviceWeight } from "./device_weight.ts";
import { dequantizeCpu, qmatmulCpu, qmatmulCpuPanels } from "./qmatmul_cpu.ts";

/**
 * Which kernel runs a {@link qmatmul}: `auto` picks `matvec` for ≤ {@link MATVEC_MAX_ROWS} rows
 * of x and `tiled` otherwise. On the CPU, `matvec` is the plain row loop and `tiled` goes a panel
 * of W at a time through the f32 matmul.
 */
export type QmatmulPath = "auto" | "tiled" | "matvec";

/** Options of {@link qmatmul}. */
export interface QmatmulOptions {
  /** Bias added to every output row: [N], or [K] with `transW`. */
  bias?: Tensor;
  /** Multiply by W instead of Wᵀ: x: [..., N] -> [..., K]. Default false. */
  transW?: boolean;
  /** Kernel choice (tests force each one). Default `auto`. */
  path?: QmatmulPath;
}

/** Rows of x up to which `auto` uses the matrix-vector kernel. */
export const MATVEC_MAX_ROWS: number = MV_ROWS;

function spec(w: DeviceWeight): QWeightSpec {
  const { format, blockSize, dqBlockSize } = w.layout;
  const table = format === "nf4" || format === "fp4" || format === "int4"
    ? sharedTable(format)
    : null;
  return { format, blockSize, dqBlockSize, table };
}

function gpuOf(t: { backend: unknown }, what: string): WebGpuBackend {
  if (!(t.backend instanceof WebGpuBackend)) throw new Error(`${what}: unknown backend`);
  return t.backend;
}

/**
 * W de-quantized to an f32 tensor [N, K] on the weight's backend (for tests, merges and
 * teaching; the products never need it).
 */
export function dequantizeOnDevice(w: DeviceWeight): Tensor {
  const dev = w.backend;
  const [N, K] = w.shape;
  if (dev.kind === "cpu") {
    const data = dequantizeCpu(w.layout, w.hostArrays());
    return new Tensor(dev, { backendId: dev.id, data } as CpuStorage, [N, K], "f32");
  }
  const engine = gpuOf(w, "dequantizeOnDevice").engine;
  const out = engine.alloc(N * K * 4);
  engine.run(qDequantKernel(spec(w)), [out, ...w.gpuBuffers()], [N * K, K], groups1d(N * K));
  return new Tensor(dev, { backendId: dev.id, buffer: out } as GpuStorage, [N, K], "f32");
}

/**
 * `y = x · dequant(W)ᵀ (+ bias)`: x [..., K] -> y [..., N]. With `transW`,
 * `y = x · dequant(W) (+ bias)`: x [..., N] -> y [..., K].
 *
 * @example
 * ```ts
 * const w = toDevice(dev, quantize(weights, [out, inp], "nf4", { doubleQuant: true }));
 * const y = qmatmul(x, w, { bias }); // x: [B, T, inp] -> [B, T, out]
 * const dx = qmatmul(dy, w, { transW: true }); // dy: [B, T, out] -> [B, T, inp]
 * ```
 */
export function qmatmul(x: Tensor, w: DeviceWeight, opts: QmatmulOptions = {}): Tensor {
  const transW = opts.transW ?? false;
  const bias = opts.bias;
  const [N, K] = w.shape;
  const inner = transW ? N : K, outs = transW ? K : N;
  const what = `qmatmul: x ${fmtShape(x.shape)} @ ${w.format} W [${N},${K}]${transW ? "" : "ᵀ"}`;
  if (x.backend !== w.backend || (bias && bias.backend !== x.backend)) {
    throw new Error(`${what}: operands on different backends`);
  }
  if (x.dtype !== "f32" || (bias && bias.dtype !== "f32")) {
    throw new TypeError(`${what}: x and bias must be f32`);
  }
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== inner) {
    throw new RangeError(`${what}: x's last dim should be ${inner}`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outs)) {
    throw new RangeError(`${what}: bias ${fmtShape(bias.shape)} should be [${outs}]`);
  }
  const M = x.size / inner;
  const outShape = [...x.shape.slice(0, -1), outs];
  const dev = x.backend;
  const path = opts.path ?? "auto";
  const matvec = path === "matvec" || (path === "auto" && M <= MATVEC_MAX_ROWS);
  if (dev.kind === "cpu") {
    const xs = (x.storage as CpuStorage).data as Float32Array;
    const bs = bias ? (bias.storage as CpuStorage).data as Float32Array : null;
    const data = (matvec ? qmatmulCpu : qmatmulCpuPanels)(
      w.layout,
      w.hostArrays(),
      xs,
      M,
      bs,
      transW,
    );
    return new Tensor(dev, { backendId: dev.id, data } as CpuStorage, outShape, "f32");
  }
  const gpu = gpuOf(x, "qmatmul");
  const engine = gpu.engine;
  const xb = (x.storage as GpuStorage).buffer;
  const out = engine.alloc(Math.max(1, M * outs) * 4);
  const bufs = [xb, bias ? (bias.storage as GpuStorage).buffer : xb, out, ...w.gpuBuffers()];
  if (M > 0 && matvec) {
    const k = qMatvecKernel(spec(w), transW);
    const groups = transW ? Math.ceil(K / MVT_WG_COLS) : Math.ceil(N / MV_WG_ROWS);
    if (groups > 65535) throw new RangeError(`${what}: too many outputs for one dispatch`);
    for (let x0 = 0; x0 < M; x0 += MV_ROWS) {
      const rows = Math.min(MV_ROWS, M - x0);
      engine.run(k, bufs, [rows, outs, inner, K, bias ? 1 : 0, x0], [groups, 1, 1]);
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
      matmulKernel(v, matmulSpec(p), spec(w)),
      bufs,
      [M, outs, inner, 0, 0, bias ? 1 : 0, f32Bits(1), 0],
      groups,
    );
  }
  return new Tensor(dev, { backendId: dev.id, buffer: out } as GpuStorage, outShape, "f32");
}
