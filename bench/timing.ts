/**
 * GPU-honest timing for the benchmarks: a submit followed by a wait costs ≈ 11 ms through Deno's
 * WebGPU (on the H200 and on lavapipe), far more than one small kernel, so one wait per call would
 * measure the wait. {@link timePerCall} records k calls per wait and takes the slope between k and
 * 2k calls, so the fixed cost of the wait drops out.
 *
 * @module
 */

/** Result of {@link timePerCall}. */
export interface CallTiming {
  /** Milliseconds per call from the slope (the wait's fixed cost removed). */
  ms: number;
  /** Milliseconds per call including its share of one wait (2k calls per wait): an upper bound. */
  msWithWait: number;
  /** Calls per wait in the slope's short batch (k). */
  k: number;
}

/**
 * Times `record` (records one call's work without waiting for it) with `wait` (submits and waits
 * for everything recorded). One warm-up batch; k doubles until a batch takes ≥ minMs / 3; then
 * batches of k and 2k calls give `ms = (t(2k) − t(k)) / k`. When noise makes that slope
 * non-positive or larger than the per-call time including the wait, the latter is reported.
 */
export async function timePerCall(
  record: () => void,
  wait: () => Promise<void>,
  minMs: number,
): Promise<CallTiming> {
  const run = async (k: number): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < k; i++) record();
    await wait();
    return performance.now() - t0;
  };
  await run(1); // warm-up: pipeline compile, buffer pool, JIT
  let k = 1;
  while ((await run(k)) < minMs / 3 && k < 1 << 20) k *= 2;
  const t1 = await run(k), t2 = await run(2 * k);
  const msWithWait = t2 / (2 * k);
  let ms = (t2 - t1) / k;
  if (!(ms > 0) || ms > msWithWait) ms = msWithWait;
  return { ms, msWithWait, k };
}
