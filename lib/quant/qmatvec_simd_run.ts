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

/** An array the kernel reads and how many of its bytes. */
type Part = [Uint32Array | Float32Array, number];

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
  // The kernel's five array arguments (codes, absmax, dq codes, dq scales, dq map): each an array
  // and the bytes the kernel reads, or null (address 0) where the layout has none.
  const dq = !!a.dqCodes;
  const whole = (t: Uint32Array | Float32Array): Part => [t, t.byteLength];
  const parts: (Part | null)[] = dq
    ? [[a.data, rowBytes], null, whole(a.dqCodes!), whole(a.dqScales!), whole(a.dqMap!)]
    : [[a.data, rowBytes], [a.absmax!, 4 * numBlocks], null, null, null];
  // The weight's own addresses when it lies in the arena (placed by the CPU backend's upload).
  let addrs = parts.map((p) => (p ? arenaAddr(p[0]) : 0));
  const resident = addrs.every((v) => v >= 0);
  // Scratch: planes [64 B] | x de-interleaved [K f32] | out [N f64] | a copy of the arrays.
  const xOff = 64, outOff = xOff + up64(4 * K), copyOff = outOff + up64(8 * N);
  const copyBytes = resident ? 0 : parts.reduce((s, p) => s + (p ? up64(p[1]) : 0), 0);
  const base = k ? scratch(copyOff + copyBytes) : -1;
  if (!k || base < 0) return twin(layout, a, code, x, M, bias, y);
  const buf = arenaBuffer();
  if (!resident) {
    let o = base + copyOff;
    addrs = parts.map((p) => {
      if (!p) return 0;
      const [src, bytes] = p, at = o;
      new Uint8Array(buf, at, bytes).set(new Uint8Array(src.buffer, src.byteOffset, bytes));
      o += up64(bytes);
      return at;
    });
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
