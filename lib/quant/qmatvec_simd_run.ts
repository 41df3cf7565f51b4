/**
 * `qmatvecCpuFast` for weights whose absmax blocks lie inside rows and hold a multiple of 32
 * weights (`qmatvec_cpu_fast.ts` sends them here): the SIMD kernel (`qmatvec_simd.ts`) on one
 * or two threads (`qmatvec_threads.ts`), reading the codes where the CPU backend put them (the
 * arena, `wasm_arena.ts`); arrays elsewhere are copied into the arena's scratch slot per call.
 * Where WebAssembly SIMD is missing, or the arena cannot hold the copy, its TypeScript twin
 * (`qmatvec_simd_ts.ts`) gives the same bits.
 *
 * @module
 */

import type { PackedArrays, PackedLayout } from "./formats/format.ts";
import { absmaxArray } from "./absmax.ts";
import { codePlanes, deinterleave, rowsSimdTs } from "./qmatvec_simd_ts.ts";
import { runRows, simdKernel } from "./qmatvec_threads.ts";
import { arenaAddr, arenaBuffer, scratch } from "./wasm_arena.ts";

const up64 = (b: number) => Math.ceil(b / 64) * 64;

/**
 * y [M, N] = x [M, K] · Wᵀ (+ bias) by the SIMD kernel (or its twin where it cannot run, or
 * when `wasm` is false). `code`: the format's 16 values.
 */
export function simdMatvec(
  layout: PackedLayout,
  a: PackedArrays,
  code: Float32Array,
  x: Float32Array,
  M: number,
  bias: Float32Array | null,
  y: Float32Array,
  wasm: boolean,
): Float32Array {
  const { N, K, blockSize, dqBlockSize } = layout;
  const P = K >>> 1, hb = blockSize >>> 1, rowBytes = N * P, numBlocks = rowBytes / hb;
  const k = wasm ? simdKernel() : null;
  // The weight's own addresses when it lies in the arena (placed by the CPU backend's upload).
  const dq = !!a.dqCodes;
  let addrs = dq
    ? [arenaAddr(a.data), 0, arenaAddr(a.dqCodes!), arenaAddr(a.dqScales!), arenaAddr(a.dqMap!)]
    : [arenaAddr(a.data), arenaAddr(a.absmax!), 0, 0, 0];
  const resident = addrs.every((v) => v >= 0);
  // Scratch: planes [64 B] | x de-interleaved [K f32] | out [N f64] | a copy of the arrays.
  const xOff = 64, outOff = xOff + up64(4 * K), copyOff = outOff + up64(8 * N);
  const side = dq
    ? [up64(a.dqCodes!.byteLength), up64(a.dqScales!.byteLength), up64(a.dqMap!.byteLength)]
    : [up64(4 * numBlocks)];
  const copyBytes = resident ? 0 : up64(rowBytes) + side.reduce((s, v) => s + v, 0);
  const base = k ? scratch(copyOff + copyBytes) : -1;
  if (!k || base < 0) return twin(layout, a, code, x, M, bias, y);
  const buf = arenaBuffer();
  if (!resident) {
    let o = base + copyOff;
    const put = (src: Uint32Array | Float32Array, bytes: number) => {
      new Uint8Array(buf, o, bytes).set(new Uint8Array(src.buffer, src.byteOffset, bytes));
      o += up64(bytes);
      return o - up64(bytes);
    };
    addrs = dq
      ? [
        put(a.data, rowBytes),
        0,
        put(a.dqCodes!, a.dqCodes!.byteLength),
        put(a.dqScales!, a.dqScales!.byteLength),
        put(a.dqMap!, a.dqMap!.byteLength),
      ]
      : [put(a.data, rowBytes), put(a.absmax!, 4 * numBlocks), 0, 0, 0];
  }
  codePlanes(code, new Uint8Array(buf, base, 64));
  const xd = new Float32Array(buf, base + xOff, K), out = new Float64Array(buf, base + outOff, N);
  const args = [base, base + xOff, ...addrs, dq ? dqBlockSize : 1, base + outOff, P, hb];
  for (let m = 0; m < M; m++) {
    deinterleave(x, m * K, K, xd);
    runRows(k, args, N);
    for (let n = 0; n < N; n++) y[m * N + n] = out[n] + (bias ? bias[n] : 0);
  }
  return y;
}

/** The TypeScript twin of the path above: the same sums, the same bits. */
function twin(
  layout: PackedLayout,
  a: PackedArrays,
  code: Float32Array,
  x: Float32Array,
  M: number,
  bias: Float32Array | null,
  y: Float32Array,
): Float32Array {
  const { N, K, blockSize } = layout;
  const P = K >>> 1, hb = blockSize >>> 1;
  const amax = absmaxArray(layout, a, (N * P) / hb);
  const codes = new Uint8Array(a.data.buffer, a.data.byteOffset, N * P);
  const xd = new Float32Array(K), out = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    deinterleave(x, m * K, K, xd);
    rowsSimdTs(code, xd, codes, amax, out, P, hb, 0, N);
    for (let n = 0; n < N; n++) y[m * N + n] = out[n] + (bias ? bias[n] : 0);
  }
  return y;
}
