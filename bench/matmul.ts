/**
 * `deno task bench`: f32 matmul GFLOP/s at 128…4096 on each available backend, side by side in
 * one run: `cpu-js` (the plain TypeScript loop, `matmulJs`), `cpu` (the CPU backend: OpenBLAS when
 * available, see its description), `webgpu` (the backend's own variant choice: tuned on a hardware
 * adapter, else the shape heuristic) and one `webgpu:<variant>` column per f32 matmul variant
 * (`t64`, `t128`, …; see `lib/backend/webgpu/kernels/matmul.ts`).
 *
 * Flags: `--json` (print a JSON record instead of the table), `--sizes 128,256` (default
 * 128,256,512,1024,2048,4096, where 4096 is dropped on a software adapter such as lavapipe),
 * `--min-ms 300` (time per measurement), `--js-max 1024` (largest size for the slow `cpu-js`
 * column), `--variants t64,t128` (variant columns; default all that fit the device, or only
 * `LORALAB_MATMUL_VARIANT` when it is set; `none` for no variant column), `--variant-max 4096`
 * (largest size for the variant columns; default 1024 on a software adapter), `--tune` (tune on a
 * software adapter too).
 *
 * On a hardware adapter the bench first runs `tuneMatmul` on the square sizes and reports the
 * winner per size (`picked`); the `webgpu` column then uses it. The adapter is named in the header
 * so that numbers are never mistaken for a GPU's.
 */

import { parseArgs } from "node:util";
import { type Backend, cpu, getDevice, matmul, type MatmulParams, Tensor } from "../lib/mod.ts";
import { MATMUL_VARIANTS, WebGpuBackend } from "../lib/backend/webgpu/mod.ts";
import { matmulJs } from "../lib/backend/cpu/kernels.ts";
import { timePerCall } from "./timing.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    sizes: { type: "string" },
    "min-ms": { type: "string", default: "300" },
    "js-max": { type: "string", default: "1024" },
    variants: { type: "string" },
    "variant-max": { type: "string" },
    tune: { type: "boolean", default: false },
  },
});
const minMs = Number(values["min-ms"]);
const jsMax = Number(values["js-max"]);

let gpu: WebGpuBackend | null = null;
try {
  const dev = await getDevice({ backend: "webgpu", quiet: true });
  if (dev instanceof WebGpuBackend) gpu = dev;
} catch (e) {
  console.error(`bench: no WebGPU backend (${(e as Error).message})`);
}
const software = gpu?.engine.isSoftware ?? true;

const sizes = (values.sizes ?? `128,256,512,1024,2048${software ? "" : ",4096"}`)
  .split(",").map(Number);
if (sizes.some((s) => !Number.isInteger(s) || s < 1) || !(minMs > 0)) {
  console.error("bench: --sizes takes positive integers separated by commas, --min-ms a number");
  Deno.exit(2);
}
const variantMax = Number(values["variant-max"] ?? (software ? 1024 : Infinity));
const variantNames = !gpu || values.variants === "none"
  ? []
  : values.variants
  ? values.variants.split(",")
  : gpu.forcedMatmulVariant
  ? [gpu.forcedMatmulVariant]
  : MATMUL_VARIANTS.filter((v) => gpu!.matmulVariantFits(v)).map((v) => v.name);
const forcedByEnv = gpu?.forcedMatmulVariant ?? null;
for (const name of variantNames) {
  try {
    gpu!.forceMatmulVariant(name); // checks the name and that it fits the device
  } catch (e) {
    console.error(`bench: --variants: ${(e as Error).message}`);
    Deno.exit(2);
  }
}
gpu?.forceMatmulVariant(forcedByEnv);

/** Simple timing: repeat until minMs has passed (at least once after a warm-up). */
async function timeRuns(run: () => Promise<void> | void): Promise<number> {
  await run(); // warm-up: pipeline compile, pool fill
  let reps = 0;
  const t0 = performance.now();
  do {
    await run();
    reps++;
  } while (performance.now() - t0 < minMs);
  return (performance.now() - t0) / reps;
}

/**
 * Milliseconds per [n, n]·[n, n] product on a backend: many products recorded per GPU wait and
 * the slope between k and 2k of them (bench/timing.ts), so the ≈ 11 ms submit-and-wait is not
 * counted per product.
 */
async function time(dev: Backend, n: number): Promise<number> {
  const a = Tensor.randn([n, n], { device: dev, seed: 1 });
  const b = Tensor.randn([n, n], { device: dev, seed: 2 });
  const { ms } = await timePerCall(() => matmul(a, b).dispose(), () => dev.sync(), minMs);
  a.dispose();
  b.dispose();
  return ms;
}

/** Milliseconds per product on the WebGPU backend with one variant forced. */
async function timeVariant(name: string, n: number): Promise<number> {
  gpu!.forceMatmulVariant(name);
  try {
    return await time(gpu!, n);
  } finally {
    gpu!.forceMatmulVariant(forcedByEnv);
  }
}

/** Milliseconds per product with the plain TypeScript loop (`matmulJs`), no BLAS. */
async function timeJs(n: number): Promise<number> {
  const a = new Float32Array(await Tensor.randn([n, n], { seed: 1 }).toArray());
  const b = new Float32Array(await Tensor.randn([n, n], { seed: 2 }).toArray());
  const p = { batch: 1, M: n, N: n, K: n, transA: false, transB: false, strideA: 0, strideB: 0 };
  return await timeRuns(() => void matmulJs(a, b, null, p));
}

/** The square product of size n, as backend parameters. */
function square(n: number): MatmulParams {
  return { batch: 1, M: n, N: n, K: n, transA: false, transB: false, strideA: 0, strideB: 0 };
}

// The variant the backend picks per size: tuned on hardware (or with --tune), else heuristic.
const picked: Record<number, string> = {};
let tuned = false;
if (gpu && !gpu.forcedMatmulVariant && (!software || values.tune)) {
  const res = await gpu.tuneMatmul(sizes.map((n) => ({ M: n, N: n, K: n })), { force: true });
  tuned = res.length > 0;
}
if (gpu) { for (const n of sizes) picked[n] = gpu.matmulVariantFor(square(n)).name; }
const how = !gpu
  ? ""
  : gpu.forcedMatmulVariant
  ? `forced by LORALAB_MATMUL_VARIANT=${gpu.forcedMatmulVariant}`
  : tuned
  ? "tuned"
  : "heuristic (tuning skipped on a software adapter; --tune forces it)";

/** A bench column: a backend, a forced variant, or the TypeScript loop on its own. */
interface Column {
  kind: string;
  description: string;
  time: (n: number) => Promise<number>;
  maxN: number;
}
const columns: Column[] = [
  { kind: "cpu-js", description: "TypeScript loops (matmulJs)", time: timeJs, maxN: jsMax },
  { kind: "cpu", description: cpu.description, time: (n) => time(cpu, n), maxN: Infinity },
  ...(gpu
    ? [{
      kind: "webgpu",
      description: `${gpu.description}, variant ${how}`,
      time: (n: number) => time(gpu!, n),
      maxN: Infinity,
    }]
    : []),
  ...variantNames.map((name) => ({
    kind: `webgpu:${name}`,
    description: `${gpu!.description}, variant ${name} forced`,
    time: (n: number) => timeVariant(name, n),
    maxN: variantMax,
  })),
];

const rows: {
  backend: string;
  adapter: string;
  n: number;
  ms: number;
  gflops: number;
  variant?: string;
}[] = [];
for (const n of sizes) {
  for (const col of columns) {
    if (n > col.maxN) continue;
    const ms = await col.time(n);
    const variant = col.kind === "webgpu"
      ? picked[n]
      : col.kind.startsWith("webgpu:")
      ? col.kind.slice(7)
      : undefined;
    rows.push({
      backend: col.kind,
      adapter: col.description,
      n,
      ms,
      gflops: (2 * n ** 3) / ms / 1e6,
      ...(variant ? { variant } : {}),
    });
  }
}

if (values.json) {
  console.log(
    JSON.stringify(
      {
        bench: "matmul_f32",
        deno: Deno.version.deno,
        date: new Date().toISOString(),
        adapter: gpu?.description ?? null,
        software,
        variantChoice: how,
        picked,
        rows,
      },
      null,
      2,
    ),
  );
} else {
  console.log("f32 matmul C = A·B, A and B [n, n], GFLOP/s (higher is better)");
  for (const col of columns) console.log(`  ${col.kind}: ${col.description}`);
  const gf = (n: number, kind: string) => rows.find((r) => r.n === n && r.backend === kind)?.gflops;
  const head = ["n", ...columns.map((c) => c.kind), ...(gpu ? ["picked"] : [])];
  const w = Math.max(10, ...head.map((h) => h.length + 2));
  console.log(head.map((h) => h.padStart(w)).join(""));
  for (const n of sizes) {
    const cells = columns.map((c) => gf(n, c.kind)?.toFixed(2) ?? "-");
    console.log(
      [String(n), ...cells, ...(gpu ? [picked[n]] : [])].map((c) => c.padStart(w)).join(""),
    );
  }
  const ratio = (num: string, den: string) =>
    sizes.flatMap((n) => {
      const x = gf(n, num), y = gf(n, den);
      return x && y ? [`${n}: ${(x / y).toFixed(2)}×`] : [];
    }).join(", ");
  console.log(`cpu / cpu-js: ${ratio("cpu", "cpu-js")}`);
  if (gpu) console.log(`webgpu / cpu: ${ratio("webgpu", "cpu")}`);
}
