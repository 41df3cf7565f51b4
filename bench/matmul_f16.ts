/**
 * f16 matmul on WebGPU: speed and accuracy of C = A·B, A and B [n, n], in three modes side by side:
 * `f32` (the f32 kernel), `f16-acc32` (f16 operands, f32 accumulation, f16 output: the default of
 * `matmul` on f16 tensors) and `f16-acc16` (f16 operands and accumulation, f16 output).
 *
 * Inputs are N(0,1) draws rounded to f16; the f32 mode multiplies the very same values (widened
 * exactly), so every mode is compared with one float64 reference of the same inputs, computed
 * on the CPU for a random sample of output elements (all of them up to 64², else 4096).
 * Reported per mode: GFLOP/s (2n³ / time) and, over the sample, the max and mean of
 * |C − C₆₄| / rms(C₆₄) (the error relative to the output's scale: an element's own |C₆₄| can be
 * arbitrarily near zero, which makes |err|/|C₆₄| unbounded) and the median of |C − C₆₄| / |C₆₄|.
 *
 * Flags: `--json` (print a JSON record), `--sizes 128,256` (default 128…2048, plus 4096 on a
 * hardware adapter), `--min-ms 300` (time per measurement, after one warm-up call).
 *
 * Needs a WebGPU adapter with `shader-f16` (lavapipe has it); without one it says so and reports
 * no rows. The adapter is named so that software numbers are never mistaken for a GPU's.
 */

import { parseArgs } from "node:util";
import { type Backend, cast, getDevice, matmul, Rng, Tensor } from "../lib/mod.ts";
import type { WebGpuBackend } from "../lib/backend/webgpu/webgpu_backend.ts";
import { timePerCall } from "./timing.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    sizes: { type: "string" },
    "min-ms": { type: "string", default: "300" },
  },
});
const minMs = Number(values["min-ms"]);
const sizesArg = values.sizes?.split(",").map(Number);
if ((sizesArg && sizesArg.some((s) => !Number.isInteger(s) || s < 1)) || !(minMs > 0)) {
  console.error("bench: --sizes takes positive integers separated by commas, --min-ms a number");
  Deno.exit(2);
}

/** The three modes: operand dtype and, for f16, the accumulation type. */
const MODES = [
  { name: "f32", dtype: "f32", accumulate: undefined },
  { name: "f16-acc32", dtype: "f16", accumulate: "f32" },
  { name: "f16-acc16", dtype: "f16", accumulate: "f16" },
] as const;
type ModeName = (typeof MODES)[number]["name"];

interface Row {
  backend: string;
  adapter: string;
  n: number;
  mode: ModeName;
  ms: number;
  gflops: number;
  /** Output elements compared with float64. */
  sampled: number;
  /** max |C − C₆₄| / rms(C₆₄) over the sample. */
  maxRelErr: number;
  /** mean |C − C₆₄| / rms(C₆₄) over the sample. */
  meanRelErr: number;
  /** median |C − C₆₄| / |C₆₄| over the sample. */
  medianElemRelErr: number;
}

let dev: Backend | null = null;
let why = "";
try {
  dev = await getDevice({ backend: "webgpu", quiet: true });
  if (!dev.hasF16) {
    why = `${dev.description} lacks shader-f16`;
    dev = null;
  }
} catch (e) {
  why = `no WebGPU backend (${(e as Error).message})`;
}
const software = dev ? (dev as WebGpuBackend).engine.isSoftware : true;
const sizes = sizesArg ?? [128, 256, 512, 1024, 2048, ...(software ? [] : [4096])];

/**
 * Milliseconds per call: one warm-up call (pipeline compile, pool fill) whose output goes to
 * `check`, then the slope of k vs 2k calls per GPU wait (bench/timing.ts), so the ≈ 11 ms
 * submit-and-wait is not counted per call.
 */
async function time(
  d: Backend,
  fn: () => Tensor,
  check: (out: ArrayLike<number>) => void,
): Promise<number> {
  const y = fn();
  check(await y.toArray());
  y.dispose();
  return (await timePerCall(() => fn().dispose(), () => d.sync(), minMs)).ms;
}

/** Random output positions (all of them when n² ≤ 4096) and their float64 values. */
function reference(a: Float16Array, b: Float16Array, n: number, rng: Rng) {
  const idx: number[] = [];
  if (n * n <= 4096) { for (let i = 0; i < n * n; i++) idx.push(i); }
  else for (let s = 0; s < 4096; s++) idx.push(rng.int(n * n));
  const ref = idx.map((e) => {
    const i = Math.floor(e / n), j = e % n;
    let s = 0;
    for (let k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
    return s;
  });
  return { idx, ref };
}

/** The error statistics of `out` at the sampled positions. */
function errors(out: ArrayLike<number>, idx: number[], ref: number[]) {
  const rms = Math.sqrt(ref.reduce((s, r) => s + r * r, 0) / ref.length);
  const abs = idx.map((e, s) => Math.abs(out[e] - ref[s]));
  const elem = abs.map((x, s) => (ref[s] === 0 ? (x === 0 ? 0 : Infinity) : x / Math.abs(ref[s])))
    .sort((x, y) => x - y);
  return {
    sampled: idx.length,
    maxRelErr: Math.max(...abs) / rms,
    meanRelErr: abs.reduce((s, x) => s + x, 0) / abs.length / rms,
    medianElemRelErr: elem[Math.floor(elem.length / 2)],
  };
}

const rows: Row[] = [];
if (dev) {
  for (const n of sizes) {
    const a16 = cast(Tensor.randn([n, n], { device: dev, seed: 1 }), "f16");
    const b16 = cast(Tensor.randn([n, n], { device: dev, seed: 2 }), "f16");
    const a32 = cast(a16, "f32"), b32 = cast(b16, "f32"); // the same values, widened exactly
    const ah = (await a16.toArray()) as Float16Array, bh = (await b16.toArray()) as Float16Array;
    const { idx, ref } = reference(ah, bh, n, new Rng(3));
    for (const m of MODES) {
      const run = () =>
        m.dtype === "f32" ? matmul(a32, b32) : matmul(a16, b16, { accumulate: m.accumulate });
      let err: ReturnType<typeof errors> | null = null;
      const ms = await time(dev, run, (out) => err = errors(out, idx, ref));
      rows.push({
        backend: dev.kind,
        adapter: dev.description,
        n,
        mode: m.name,
        ms,
        gflops: (2 * n ** 3) / ms / 1e6,
        ...err!,
      });
    }
    for (const t of [a16, b16, a32, b32]) t.dispose();
  }
} else console.error(`bench matmul_f16: ${why}; no rows`);

if (values.json) {
  console.log(
    JSON.stringify(
      {
        bench: "matmul_f16",
        deno: Deno.version.deno,
        date: new Date().toISOString(),
        adapter: dev?.description ?? null,
        note: dev ? undefined : why,
        rows,
      },
      null,
      2,
    ),
  );
} else if (dev) {
  console.log(`C = A·B, A and B [n, n] ~ N(0,1) rounded to f16, on ${dev.description}`);
  console.log("GFLOP/s (higher is better); error vs float64 of the same inputs, sampled:");
  console.log("  max/mean |C − C64| / rms(C64), and median |C − C64| / |C64|");
  const head = ["n", "mode", "ms", "GFLOP/s", "max err", "mean err", "median rel"];
  console.log(head.map((h) => h.padStart(12)).join(""));
  for (const r of rows) {
    const cells = [
      String(r.n).padStart(12),
      r.mode.padStart(12),
      r.ms.toFixed(2).padStart(12),
      r.gflops.toFixed(2).padStart(12),
      r.maxRelErr.toExponential(2).padStart(12),
      r.meanRelErr.toExponential(2).padStart(12),
      r.medianElemRelErr.toExponential(2).padStart(12),
    ];
    console.log(cells.join(""));
  }
  const gf = (n: number, m: ModeName) => rows.find((r) => r.n === n && r.mode === m)!.gflops;
  for (const m of ["f16-acc32", "f16-acc16"] as const) {
    console.log(
      `${m} / f32: ${
        sizes.map((n) => `${n}: ${(gf(n, m) / gf(n, "f32")).toFixed(2)}×`).join(", ")
      }`,
    );
  }
}
