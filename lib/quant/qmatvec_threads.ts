/**
 * Runs the SIMD kernel `rows` (`qmatvec_simd.ts`) over the rows of a weight on two threads: the
 * caller's and one helper (a `node:worker_threads` Worker sharing the arena memory,
 * `wasm_arena.ts`). The call stays synchronous: the caller blocks on `Atomics.wait` until the
 * helper's last chunk is done.
 *
 * Protocol (Int32 words at the start of the shared memory): the caller writes the job's
 * arguments, resets DONE, publishes CLAIM = tag·2^16 (tag = job number mod 2^15) and bumps SEQ
 * (waking the helper). Both threads then claim chunks of R rows by compare-exchange on CLAIM
 * (only while its tag is the job's, so a late helper never runs a finished job's chunk with the
 * next one's arguments), run `rows` on them and add 1 to DONE. The rows written are disjoint, and
 * each row's sums do not depend on who ran it: one thread or two give the same bits.
 *
 * The helper is created on first use and `unref`ed: it never keeps a process or `deno test`
 * alive, and a job never waits for it to start (the caller claims every chunk it has not).
 * Where it cannot be created (no `node:worker_threads`, no shared memory) everything runs on
 * the caller's thread, silently.
 *
 * @module
 */

import { Worker } from "node:worker_threads";
import { arenaMemory } from "./wasm_arena.ts";
import { instantiateRows, type RowsFn, simdModuleBytes } from "./qmatvec_simd.ts";

// Control words: job number, claim (tag·2^16 + next chunk), chunks done, the 11 arguments of
// `rows` before n0, n1; then N, rows per chunk, chunks; chunks the helper ran (ever). `work`
// below names them as numbers.
const SEQ = 0, CLAIM = 1, DONE = 2, ARGS = 3, NARGS = 11, NROWS = 14, R = 15, NCH = 16;
const BY_HELPER = 17;
/** Smallest N·K worth the second thread (a wake-up costs ≈ 10 µs). */
const MIN_WORK = 1 << 16;

/** The helper's whole source (CommonJS, run by `new Worker(src, { eval: true })`). */
const HELPER = `
const { parentPort } = require("node:worker_threads");
parentPort.once("message", ({ mem, bytes }) => {
  const mod = new WebAssembly.Module(bytes);
  const rows = new WebAssembly.Instance(mod, { env: { mem } }).exports.rows;
  const ctl = new Int32Array(mem.buffer, 0, ${BY_HELPER + 1});
  const work = ${work.toString()};
  let seen = Atomics.load(ctl, ${SEQ});
  for (;;) {
    Atomics.wait(ctl, ${SEQ}, seen);
    seen = Atomics.load(ctl, ${SEQ});
    Atomics.add(ctl, ${BY_HELPER}, work(ctl, seen, rows));
  }
});`;

/**
 * Claims and runs chunks of job `seq` until none is left; returns how many it ran (both threads
 * run this; the helper gets its source text, so it names its constants as numbers).
 */
function work(ctl: Int32Array, seq: number, rows: RowsFn): number {
  const tag = (seq & 0x7fff) << 16;
  for (let ran = 0;; ran++) {
    const c = Atomics.load(ctl, 1);
    if ((c & ~0xffff) !== tag || (c & 0xffff) >= ctl[16]) return ran;
    if (Atomics.compareExchange(ctl, 1, c, c + 1) !== c) {
      ran--;
      continue;
    }
    const r = ctl[15], n0 = (c & 0xffff) * r, n1 = Math.min(ctl[14], n0 + r);
    rows(
      ctl[3],
      ctl[4],
      ctl[5],
      ctl[6],
      ctl[7],
      ctl[8],
      ctl[9],
      ctl[10],
      ctl[11],
      ctl[12],
      ctl[13],
      n0,
      n1,
    );
    Atomics.add(ctl, 2, 1);
    Atomics.notify(ctl, 2);
  }
}

interface Kernel {
  rows: RowsFn;
  mem: WebAssembly.Memory;
  /** The helper; null when it could not be made or threads are off. */
  helper: Worker | null;
}

let kernel: Kernel | null | undefined;
let threads = 2;
let seq = 0;

/** The kernel on this thread (and its helper), made on first use; null without SIMD. */
export function simdKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  kernel = null;
  const mem = arenaMemory(), bytes = simdModuleBytes();
  const rows = mem && bytes ? instantiateRows(bytes, mem) : null;
  if (!mem || !bytes || !rows) return null;
  kernel = { rows, mem, helper: null };
  if (threads > 1) kernel.helper = startHelper(mem, bytes);
  return kernel;
}

function startHelper(mem: WebAssembly.Memory, bytes: Uint8Array): Worker | null {
  try {
    const w = new Worker(HELPER, { eval: true });
    w.unref();
    w.on("error", () => { // a helper that died claims nothing more
      if (kernel) kernel.helper = null;
    });
    w.postMessage({ mem, bytes });
    return w;
  } catch {
    return null;
  }
}

/**
 * Sets how many threads run the kernel: 1 (the caller's only) or 2 (and the helper, made on
 * the next call). Returns the old setting. Tests and benchmarks compare the two.
 */
export function setMatvecThreads(n: 1 | 2): 1 | 2 {
  const old = threads as 1 | 2;
  threads = n;
  if (kernel && n === 1 && kernel.helper) {
    kernel.helper.terminate();
    kernel.helper = null;
  } else if (kernel && n === 2 && !kernel.helper) {
    kernel.helper = startHelper(kernel.mem, simdModuleBytes()!);
  }
  return old;
}

/**
 * `rows(...args, 0, N)` of the kernel, split between the threads when there are two and N·K is
 * worth it. `args`: tab, xe, codes, amax, dqc, dqs, dqmap, dqbs, out, P, hb.
 */
export function runRows(k: Kernel, args: readonly number[], N: number): void {
  const P = args[9];
  if (!k.helper || N * P * 2 < MIN_WORK || N < 2) {
    k.rows(
      ...(args as [
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
      ]),
      0,
      N,
    );
    return;
  }
  const ctl = new Int32Array(k.mem.buffer, 0, BY_HELPER + 1);
  const r = Math.max(4, Math.ceil(N / 64));
  for (let i = 0; i < NARGS; i++) ctl[ARGS + i] = args[i];
  ctl[NROWS] = N;
  ctl[R] = r;
  ctl[NCH] = Math.ceil(N / r);
  Atomics.store(ctl, DONE, 0);
  seq = (seq + 1) & 0x7fffffff;
  Atomics.store(ctl, CLAIM, (seq & 0x7fff) << 16);
  Atomics.store(ctl, SEQ, seq);
  Atomics.notify(ctl, SEQ);
  work(ctl, seq, k.rows);
  for (let d; (d = Atomics.load(ctl, DONE)) < ctl[NCH];) Atomics.wait(ctl, DONE, d, 50);
}

/** How many chunks the helper thread has run so far (tests: that it takes part). */
export function helperChunks(): number {
  const k = simdKernel();
  return k ? Atomics.load(new Int32Array(k.mem.buffer, 0, BY_HELPER + 1), BY_HELPER) : 0;
}
