/**
 * `deno task bench`: f32 matmul GFLOP/s at 128…2048 on each available backend, side by side in
 * one run. Flags: `--json` (print a JSON record instead of the table), `--sizes 128,256`,
 * `--min-ms 300` (time per measurement).
 *
 * The WebGPU column uses whatever adapter exists, software (lavapipe) included; the adapter is
 * named in the header so the numbers are never mistaken for a GPU's.
 */

import { parseArgs } from "node:util";
import { type Backend, cpu, getDevice, matmul, Tensor } from "../lib/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    sizes: { type: "string", default: "128,256,512,1024,2048" },
    "min-ms": { type: "string", default: "300" },
  },
});
const sizes = values.sizes.split(",").map(Number);
const minMs = Number(values["min-ms"]);
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
async function time(dev: Backend, n: number): Promise<number> {
  const a = Tensor.randn([n, n], { device: dev, seed: 1 });
  const b = Tensor.randn([n, n], { device: dev, seed: 2 });
  const run = async () => {
    const c = matmul(a, b);
    await dev.sync();
    c.dispose();
  };
  await run(); // warm-up: pipeline compile, pool fill
  let reps = 0;
  const t0 = performance.now();
  do {
    await run();
    reps++;
  } while (performance.now() - t0 < minMs);
  const ms = (performance.now() - t0) / reps;
  a.dispose();
  b.dispose();
  return ms;
}

const rows: { backend: string; adapter: string; n: number; ms: number; gflops: number }[] = [];
for (const n of sizes) {
  for (const dev of backends) {
    const ms = await time(dev, n);
    rows.push({
      backend: dev.kind,
      adapter: dev.description,
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
  for (const dev of backends) console.log(`  ${dev.kind}: ${dev.description}`);
  const head = ["n", ...backends.map((b) => b.kind)];
  console.log(head.map((h) => h.padStart(10)).join(""));
  for (const n of sizes) {
    const cells = backends.map((b) =>
      rows.find((r) => r.n === n && r.backend === b.kind)!.gflops.toFixed(2)
    );
    console.log([String(n), ...cells].map((c) => c.padStart(10)).join(""));
  }
  if (backends.length > 1) {
    const r = sizes.map((n) => {
      const [c, g] = backends.map((b) =>
        rows.find((x) => x.n === n && x.backend === b.kind)!.gflops
      );
      return `${n}: ${(g / c).toFixed(2)}×`;
    });
    console.log(`webgpu / cpu: ${r.join(", ")}`);
  }
}
