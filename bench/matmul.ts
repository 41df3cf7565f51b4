/**
 * `deno task bench`: f32 matmul GFLOP/s at 128…2048 on each available backend, side by side in
 * one run: `cpu-js` (the plain TypeScript loop, `matmulJs`), `cpu` (the CPU backend: OpenBLAS when
 * available, see its description) and `webgpu`. Flags: `--json` (print a JSON record instead of
 * the table), `--sizes 128,256`, `--min-ms 300` (time per measurement), `--js-max 1024` (largest
 * size for the slow `cpu-js` column).
 *
 * The WebGPU column uses whatever adapter exists, software (lavapipe) included; the adapter is
 * named in the header so the numbers are never mistaken for a GPU's.
 */

import { parseArgs } from "node:util";
import { type Backend, cpu, getDevice, matmul, Tensor } from "../lib/mod.ts";
import { matmulJs } from "../lib/backend/cpu/kernels.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    sizes: { type: "string", default: "128,256,512,1024,2048" },
    "min-ms": { type: "string", default: "300" },
    "js-max": { type: "string", default: "1024" },
  },
});
const sizes = values.sizes.split(",").map(Number);
const minMs = Number(values["min-ms"]);
const jsMax = Number(values["js-max"]);
if (sizes.some((s) => !Number.isInteger(s) || s < 1) || !(minMs > 0)) {
  console.error("bench: --sizes takes positive integers separated by commas, --min-ms a number");
  Deno.exit(2);
}

const backends: Backend[] = [cpu];
try {
  backends.push(await getDevice({ backend: "webgpu", quiet: true }));
} catch (e) {
  console.error(`bench: no WebGPU backend (${(e as Error).message})`);
}

/** Median-free simple timing: repeat until minMs has passed (at least once after a warm-up). */
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

/** Milliseconds per [n, n]·[n, n] product on a backend. */
async function time(dev: Backend, n: number): Promise<number> {
  const a = Tensor.randn([n, n], { device: dev, seed: 1 });
  const b = Tensor.randn([n, n], { device: dev, seed: 2 });
  const ms = await timeRuns(async () => {
    const c = matmul(a, b);
    await dev.sync();
    c.dispose();
  });
  a.dispose();
  b.dispose();
  return ms;
}

/** Milliseconds per product with the plain TypeScript loop (`matmulJs`), no BLAS. */
async function timeJs(n: number): Promise<number> {
  const a = new Float32Array(await Tensor.randn([n, n], { seed: 1 }).toArray());
  const b = new Float32Array(await Tensor.randn([n, n], { seed: 2 }).toArray());
  const p = { batch: 1, M: n, N: n, K: n, transA: false, transB: false, strideA: 0, strideB: 0 };
  return await timeRuns(() => void matmulJs(a, b, null, p));
}

/** A bench column: a backend, or the TypeScript loop on its own. */
interface Column {
  kind: string;
  description: string;
  time: (n: number) => Promise<number>;
  maxN: number;
}
const columns: Column[] = [
  { kind: "cpu-js", description: "TypeScript loops (matmulJs)", time: timeJs, maxN: jsMax },
  ...backends.map((dev) => ({
    kind: dev.kind,
    description: dev.description,
    time: (n: number) => time(dev, n),
    maxN: Infinity,
  })),
];

const rows: { backend: string; adapter: string; n: number; ms: number; gflops: number }[] = [];
for (const n of sizes) {
  for (const col of columns) {
    if (n > col.maxN) continue;
    const ms = await col.time(n);
    rows.push({
      backend: col.kind,
      adapter: col.description,
      n,
      ms,
      gflops: (2 * n ** 3) / ms / 1e6,
    });
  }
}

if (values.json) {
  console.log(
    JSON.stringify(
      { bench: "matmul_f32", deno: Deno.version.deno, date: new Date().toISOString(), rows },
      null,
      2,
    ),
  );
} else {
  console.log("f32 matmul C = A·B, A and B [n, n], GFLOP/s (higher is better)");
  for (const col of columns) console.log(`  ${col.kind}: ${col.description}`);
  const gf = (n: number, kind: string) => rows.find((r) => r.n === n && r.backend === kind)?.gflops;
  const head = ["n", ...columns.map((c) => c.kind)];
  console.log(head.map((h) => h.padStart(10)).join(""));
  for (const n of sizes) {
    const cells = columns.map((c) => gf(n, c.kind)?.toFixed(2) ?? "-");
    console.log([String(n), ...cells].map((c) => c.padStart(10)).join(""));
  }
  const ratio = (num: string, den: string) =>
    sizes.flatMap((n) => {
      const x = gf(n, num), y = gf(n, den);
      return x && y ? [`${n}: ${(x / y).toFixed(2)}×`] : [];
    }).join(", ");
  console.log(`cpu / cpu-js: ${ratio("cpu", "cpu-js")}`);
  if (backends.length > 1) console.log(`webgpu / cpu: ${ratio("webgpu", "cpu")}`);
}
