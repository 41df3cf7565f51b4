/**
 * Quantized matmul `y = x · Wᵀ`, x [M, K], W [N, K] held in f16, int8, NF4 or FP4, next to the
 * f32 `matmul(x, w, { transB: true })` at the same shapes, on each backend in one run. Reports
 * GFLOP/s (2·M·N·K per call) and effective GB/s (bytes of the weight format read per call / time):
 * M = 1 (generation) is bound by the bytes of W, M = 256 (a training batch) by arithmetic.
 *
 * Flags: `--json` (print a JSON record), `--sizes 1024,2048` (N = K), `--rows 1,256` (M),
 * `--formats f32,f16,int8-row,nf4,fp4` (also int8, bf16, int4, nf4+dq, fp4+dq, int4+dq),
 * `--min-ms 200` (time per measurement, after one warm-up call).
 *
 * The WebGPU column uses whatever adapter exists, software (lavapipe) included; the adapter is
 * named in the header so the numbers are never mistaken for a GPU's.
 */

import { parseArgs } from "node:util";
import { type Backend, cpu, getDevice, matmul, quant, Tensor } from "../lib/mod.ts";
import { randn } from "../lib/quant/rng.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    sizes: { type: "string", default: "1024,2048" },
    rows: { type: "string", default: "1,256" },
    formats: { type: "string", default: "f32,f16,int8-row,nf4,fp4" },
    "min-ms": { type: "string", default: "200" },
  },
});
const ints = (s: string) => s.split(",").map(Number);
const sizes = ints(values.sizes), rowsList = ints(values.rows);
const minMs = Number(values["min-ms"]);
const KNOWN = ["f32", "f16", "bf16", "int8", "int8-row", "nf4", "fp4", "int4"];
const formats = values.formats.split(",");
if (
  [...sizes, ...rowsList].some((s) => !Number.isInteger(s) || s < 1) || !(minMs > 0) ||
  formats.some((f) => !KNOWN.includes(f.replace(/\+dq$/, "")))
) {
  console.error(
    `bench: --sizes/--rows take positive integers separated by commas, --min-ms a number, ` +
      `--formats some of ${KNOWN.join(",")} (4-bit ones with +dq)`,
  );
  Deno.exit(2);
}

const backends: Backend[] = [cpu];
try {
  backends.push(await getDevice({ backend: "webgpu", quiet: true }));
} catch (e) {
  console.error(`bench: no WebGPU backend (${(e as Error).message})`);
}

/** Milliseconds per call of `fn`: one warm-up, then repeats until minMs has passed. */
async function time(dev: Backend, fn: () => Tensor): Promise<number> {
  const once = async () => {
    const y = fn();
    await dev.sync();
    y.dispose();
  };
  await once(); // warm-up: pipeline compile, pool fill, JIT
  let reps = 0;
  const t0 = performance.now();
  do {
    await once();
    reps++;
  } while (performance.now() - t0 < minMs);
  return (performance.now() - t0) / reps;
}

interface Row {
  backend: string;
  adapter: string;
  M: number;
  N: number;
  K: number;
  format: string;
  weightBytes: number;
  ms: number;
  gflops: number;
  gbps: number;
}
const rows: Row[] = [];

for (const n of sizes) {
  const wHost = randn(n * n, 1, 0.02); // W [N, K], N = K = n
  const qs = new Map<string, quant.QuantizedWeight>();
  for (const f of formats) {
    if (f === "f32") continue;
    const format = f.replace(/\+dq$/, "") as quant.QuantFormat;
    qs.set(f, quant.quantize(wHost, [n, n], format, { doubleQuant: f.endsWith("+dq") }));
  }
  for (const dev of backends) {
    for (const M of rowsList) {
      const x = Tensor.fromArray(randn(M * n, 2), [M, n], { device: dev });
      for (const f of formats) {
        let ms: number, weightBytes: number;
        if (f === "f32") {
          const w = Tensor.fromArray(wHost, [n, n], { device: dev });
          ms = await time(dev, () => matmul(x, w, { transB: true }));
          weightBytes = w.bytes;
          w.dispose();
        } else {
          const w = quant.toDevice(dev, qs.get(f)!);
          ms = await time(dev, () => quant.qmatmul(x, w));
          weightBytes = w.bytes;
          w.dispose();
        }
        rows.push({
          backend: dev.kind,
          adapter: dev.description,
          M,
          N: n,
          K: n,
          format: f,
          weightBytes,
          ms,
          gflops: (2 * M * n * n) / ms / 1e6,
          gbps: weightBytes / ms / 1e6,
        });
      }
      x.dispose();
    }
  }
}

if (values.json) {
  console.log(
    JSON.stringify(
      { bench: "qmatmul", deno: Deno.version.deno, date: new Date().toISOString(), rows },
      null,
      2,
    ),
  );
} else {
  console.log("y = x · Wᵀ, x [M, K], W [N, K] in each format; f32 is matmul(x, w, {transB})");
  console.log("GB/s = bytes of the weight format / time; ×f32 = f32 time / this time");
  for (const dev of backends) {
    console.log(`\n${dev.kind}: ${dev.description}`);
    const head = ["M", "N=K", "format", "bits/w", "ms", "GFLOP/s", "GB/s", "×f32"];
    console.log(head.map((h) => h.padStart(9)).join(""));
    for (const r of rows.filter((r) => r.backend === dev.kind)) {
      const base = rows.find((b) =>
        b.backend === r.backend && b.M === r.M && b.N === r.N && b.format === "f32"
      );
      const cells = [
        String(r.M),
        String(r.N),
        r.format,
        ((r.weightBytes * 8) / (r.N * r.K)).toFixed(3),
        r.ms.toFixed(2),
        r.gflops.toFixed(2),
        r.gbps.toFixed(2),
        base ? (base.ms / r.ms).toFixed(2) : "-",
      ];
      console.log(cells.map((c) => c.padStart(9)).join(""));
    }
  }
}
