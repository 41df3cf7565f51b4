/**
 * One shared WebAssembly memory per isolate (`WebAssembly.Memory({ shared: true })`, up to
 * wasm32's 4 GiB) that holds the packed 4-bit weights of the CPU backend, so the decoding kernel
 * (`qmatvec_simd.ts`) reads their codes where they lie instead of copying them in per call, and
 * a second thread (`qmatvec_threads.ts`) reads the same bytes. A shared memory never detaches
 * its views when it grows: a weight placed here keeps its `Uint32Array` for life.
 *
 * Layout: bytes [0, {@link CONTROL_BYTES}) hold the threads' control words; the rest is a
 * first-fit heap of 64-byte aligned slots. A slot goes back to the heap when the view made for
 * it ({@link place}) is garbage collected (a `FinalizationRegistry`), so a disposed
 * `DeviceWeight` frees its slot; the memory itself never shrinks. A view derived from a placed
 * array (`subarray`, a new view on its buffer) must not outlive it.
 *
 * Where the memory cannot grow (4 GiB reached, no memory, a test's {@link setArenaLimit}),
 * {@link place} returns null and the weight stays in ordinary arrays (copied in per call).
 *
 * @module
 */

import type { PackedArrays } from "./formats/format.ts";

const PAGE = 65536;
/** One page less than 4 GiB: every address and end address fits in an unsigned i32. */
const MAX_PAGES = 65535;
const ALIGN = 64;
/** Bytes at the start of the memory kept for the threads' control words. */
export const CONTROL_BYTES = 256;

let memory: WebAssembly.Memory | null | undefined;
/** The memory's buffers handed out so far (each growth makes a new one): views on them are ours. */
const buffers = new WeakSet<ArrayBufferLike>();
/** First byte never allocated; the heap is [CONTROL_BYTES, top). */
let top = CONTROL_BYTES;
/** Free slots [offset, bytes] below top, sorted by offset, never adjacent. */
const freeList: [number, number][] = [];
let limit = MAX_PAGES * PAGE;
const registry = new FinalizationRegistry<[number, number]>(([o, n]) => release(o, n));

/** The memory, created on first use; null where shared WebAssembly memory is unavailable. */
export function arenaMemory(): WebAssembly.Memory | null {
  if (memory !== undefined) return memory;
  try {
    memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
  } catch {
    memory = null;
  }
  return memory;
}

/** The memory's current buffer (a SharedArrayBuffer), remembered as one of the arena's. */
export function arenaBuffer(): ArrayBufferLike {
  const b = arenaMemory()!.buffer;
  buffers.add(b);
  return b;
}

/** The byte address of a view into the arena, or -1 for any other array. */
export function arenaAddr(a: ArrayBufferView): number {
  return buffers.has(a.buffer) ? a.byteOffset : -1;
}

/** Caps the arena's size (tests of the fallback); returns the old cap. */
export function setArenaLimit(bytes: number): number {
  const old = limit;
  limit = Math.min(bytes, MAX_PAGES * PAGE);
  return old;
}

/** A slot of at least `bytes` (64-byte aligned), or -1 when the memory cannot grow to it. */
export function alloc(bytes: number): number {
  const mem = arenaMemory();
  if (!mem) return -1;
  const n = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  for (let i = 0; i < freeList.length; i++) {
    const [o, size] = freeList[i];
    if (size < n || o + n > limit) continue;
    if (size === n) freeList.splice(i, 1);
    else freeList[i] = [o + n, size - n];
    return o;
  }
  if (top + n > limit) return -1;
  const have = mem.buffer.byteLength;
  if (top + n > have) {
    const pages = Math.ceil((top + n - have) / PAGE) + 16; // 1 MiB of headroom
    try {
      mem.grow(Math.min(pages, MAX_PAGES - have / PAGE));
    } catch {
      return -1; // out of memory
    }
  }
  const o = top;
  top += n;
  return o;
}

/** Gives a slot from {@link alloc} back (bytes as asked; rounded the same way). */
export function release(offset: number, bytes: number): void {
  let o = offset, n = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  let i = 0;
  while (i < freeList.length && freeList[i][0] < o) i++;
  if (i > 0 && freeList[i - 1][0] + freeList[i - 1][1] === o) { // merge with the one before
    o = freeList[i - 1][0];
    n += freeList[i - 1][1];
    freeList.splice(--i, 1);
  }
  if (i < freeList.length && o + n === freeList[i][0]) { // and the one after
    n += freeList[i][1];
    freeList.splice(i, 1);
  }
  if (o + n === top) top = o;
  else freeList.splice(i, 0, [o, n]);
}

type Typed = Uint32Array | Float32Array;

/** A copy of `a` in the arena, its slot freed when the copy is collected; null if no room. */
function placeOne<T extends Typed>(
  a: T,
  ctor: new (b: ArrayBufferLike, o: number, n: number) => T,
) {
  const o = alloc(a.byteLength);
  if (o < 0) return null;
  const view = new ctor(arenaBuffer(), o, a.length);
  view.set(a);
  registry.register(view, [o, a.byteLength]);
  return view;
}

/**
 * The arrays of a packed weight copied into the arena (each freed when its view is collected),
 * or the arrays themselves when they do not all fit.
 */
export function place(arrays: PackedArrays): PackedArrays {
  const out: Record<string, Typed | null> = {};
  for (const [k, a] of Object.entries(arrays) as [string, Typed | null][]) {
    if (a === null) {
      out[k] = null;
      continue;
    }
    const v = a instanceof Float32Array ? placeOne(a, Float32Array) : placeOne(a, Uint32Array);
    if (!v) return arrays; // the ones placed so far are collected and freed
    out[k] = v;
  }
  return out as unknown as PackedArrays;
}

/** A scratch slot of at least `bytes`, reused between calls; -1 when it cannot be had. */
export function scratch(bytes: number): number {
  if (scratchBytes < bytes) {
    if (scratchOff >= 0) release(scratchOff, scratchBytes);
    scratchBytes = Math.ceil(bytes * 1.25 / ALIGN) * ALIGN;
    scratchOff = alloc(scratchBytes);
    if (scratchOff < 0) scratchBytes = 0;
  }
  return scratchOff;
}
let scratchOff = -1, scratchBytes = 0;
