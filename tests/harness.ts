/**
 * Test harness: runs each op test on both backends, with float64 references and stated
 * tolerances. The WebGPU backend is always opened with software adapters allowed (lavapipe in
 * CI) and a test FAILS when no adapter exists: a skipped GPU test is never counted as passing.
 */

import { type Backend, cpu, getDevice, type Rng, Tensor } from "../lib/mod.ts";

/** Unit roundoff of float32. */
export const U32 = 2 ** -24;

/** The WebGPU backend on any adapter; throws (fails the test) when there is none. */
export function gpu(): Promise<Backend> {
  return getDevice({ backend: "webgpu" });
}

/** Registers `fn` once per backend: `<name> [cpu]` and `<name> [webgpu]`. */
export function bothBackends(name: string, fn: (dev: Backend) => Promise<void>): void {
  Deno.test({
    name: `${name} [cpu]`,
    fn: () => fn(cpu),
  });
  Deno.test({
    name: `${name} [webgpu]`,
    sanitizeResources: false, // the shared GPU device outlives a single test
    sanitizeOps: false,
    fn: async () => fn(await gpu()),
  });
}

/** Random normal data as float64 numbers (exactly representable in f32). */
export function randData(rng: Rng, n: number, std = 1): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.fround(std * rng.normal()));
  return out;
}

/** A random integer in [lo, hi]. */
export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/** Uploads float64 data as an f32 tensor. */
export function t(dev: Backend, data: number[], shape: number[]): Tensor {
  return Tensor.fromArray(data, shape, { device: dev });
}

/**
 * Asserts |got[i] - want[i]| ≤ tol[i] elementwise (tol a number or per-element array); the
 * message names the first offending index with both values.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number | ArrayLike<number>,
  what: string,
): void {
  if (got.length !== want.length) {
    throw new Error(`${what}: length ${got.length} != expected ${want.length}`);
  }
  for (let i = 0; i < got.length; i++) {
    const tl = typeof tol === "number" ? tol : tol[i];
    const g = got[i], w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (g === w) continue; // covers matching infinities
    if (!(Math.abs(g - w) <= tl)) {
      throw new Error(
        `${what}: element ${i}: got ${g}, want ${w} (|diff| ${Math.abs(g - w)} > ${tl})`,
      );
    }
  }
}

/** What {@link runScript} returns: the exit status and the decoded output streams. */
export interface ScriptResult {
  /** Exit status. */
  code: number;
  /** Standard output. */
  out: string;
  /** Standard error. */
  err: string;
}

/**
 * Runs `lib/cli/<script>` in a child `deno run` with `perms` (e.g. `["--allow-read",
 * "--allow-env"]`) and `args`, and returns its status and output: the way the CLI tests run a
 * command as a user would, with the permissions the test chooses.
 */
export async function runScript(
  script: string,
  perms: readonly string[],
  args: readonly string[],
  env?: Record<string, string>,
): Promise<ScriptResult> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...perms,
      new URL(`../lib/cli/${script}`, import.meta.url).pathname,
      ...args,
    ],
    ...(env ? { env } : {}),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}
