/**
 * Quantized matmul `y = x · Wᵀ`, x [M, K], W [N, K] held in f16, int8, NF4 or FP4, next to the
 * f32 `matmul(x, w, { transB: true })` at the same shapes, on each backend in one run. Reports
 * GFLOP/s (2·M·N·K per call), effective GB/s (bytes of the weight format read per call, packed
 * weights + scales, / time) and ×f32 (our f32 time / this format's time, same shape and backend):
 * M = 1 (generation) is bound by the bytes of W, large M (a training batch) by arithmetic.
 *
 * Timing records many calls per GPU wait and takes the slope between k and 2k calls (see
 * bench/timing.ts), so the ≈ 11 ms submit + wait round trip is not counted per call.
 *
 * Flags: `--json`, `--sizes 1024,2048` (square N = K; empty for none), `--rows 1,256` (M of the
 * square shapes), `--shapes 8192x2304x768,…` (extra M×N×K), `--gpt2-m 8192` (GPT-2-small's
 * linears, N×K = 2304×768 c_attn, 768×768 attn c_proj, 3072×768 c_fc, 768×3072 mlp c_proj, at
 * that M and at M = 1), `--formats f32,f16,int8-row,nf4,fp4` (also int8, bf16, int4, nf4+dq,
 * fp4+dq, int4+dq), `--min-ms 200`, `--backends cpu,webgpu`, `--copy` (measure the WebGPU
 * device-to-device copy bandwidth first, in the same process, as the ceiling of the M = 1 rows:
 * `copy_fraction` = weight GB/s / copy GB/s, where the copy counts read + written bytes),
 * `--copy-mib 64,256,1024`, `--code-table auto|private|workgroup|both` (WebGPU: where the 4-bit
 * kernels keep their code table, `WebGpuBackend.quantCodeTable`; `both` times each 4-bit format
 * with each, side by side, rows marked `code_table`).
 *
 * The WebGPU column uses whatever adapter exists, software (lavapipe) included; the adapter is
 * named in the header so the numbers are never mistaken for a GPU's.
 */

import { parseArgs } from "node:util";
import { type Backend, cpu, getDevice, matmul, quant, Tensor } from "../lib/mod.ts";
import { WebGpuBackend } from "../lib/backend/webgpu/mod.ts";
import { randn } from "../lib/quant/rng.ts";
import { type CopyResult, defaultCopySizes, measureCopy } from "./copy.ts";
import { timePerCall } from "./timing.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    sizes: { type: "string", default: "1024,2048" },
    rows: { type: "string", default: "1,256" },
    shapes: { type: "string", default: "" },
    "gpt2-m": { type: "string", default: "" },
    formats: { type: "string", default: "f32,f16,int8-row,nf4,fp4" },
    "min-ms": { type: "string", default: "200" },
    backends: { type: "string", default: "cpu,webgpu" },
    copy: { type: "boolean", default: false },
    "copy-mib": { type: "string", default: "" },
    "code-table": { type: "string", default: "auto" },
  },
});
const ints = (s: string) => (s ? s.split(",").map(Number) : []);
const sizes = ints(values.sizes), rowsList = ints(values.rows), copyMib = ints(values["copy-mib"]);
const gpt2M = ints(values["gpt2-m"]);
const minMs = Number(values["min-ms"]);
const KNOWN = ["f32", "f16", "bf16", "int8", "int8-row", "nf4", "fp4", "int4"];
const formats = values.formats.split(",");
const extra = values.shapes ? values.shapes.split(",").map((s) => s.split("x").map(Number)) : [];
const backendNames = values.backends.split(",");
if (
  [...sizes, ...rowsList, ...copyMib, ...gpt2M, ...extra.flat()].some((s) =>
    !Number.isInteger(s) || s < 1
  ) || !(minMs > 0) || extra.some((s) => s.length !== 3) ||
  formats.some((f) => !KNOWN.includes(f.replace(/\+dq$/, ""))) ||
  backendNames.some((b) => b !== "cpu" && b !== "webgpu") ||
  !["auto", "private", "workgroup", "both"].includes(values["code-table"])
) {
  console.error(
    `bench: --sizes/--rows/--gpt2-m/--copy-mib take positive integers separated by commas, ` +
      `--shapes MxNxK,…, --min-ms a number, --backends cpu and/or webgpu, ` +
      `--formats some of ${KNOWN.join(",")} (4-bit ones with +dq), ` +
      `--code-table auto, private, workgroup or both`,
  );
  Deno.exit(2);
}

/** One benchmarked shape: y [M, N] = x [M, K] · W[N, K]ᵀ. */
interface Shape {
  label: string;
  M: number;
  N: number;
  K: number;
}
const shapes: Shape[] = [];
for (const n of sizes) for (const M of rowsList) shapes.push({ label: `square`, M, N: n, K: n });
for (const [M, N, K] of extra) shapes.push({ label: "custom", M, N, K });
const GPT2: [string, number, number][] = [
  ["gpt2 attn.c_attn", 2304, 768],
  ["gpt2 attn.c_proj", 768, 768],
  ["gpt2 mlp.c_fc", 3072, 768],
  ["gpt2 mlp.c_proj", 768, 3072],
];
for (const M of [...gpt2M, ...(gpt2M.length ? [1] : [])]) {
  for (const [label, N, K] of GPT2) shapes.push({ label, M, N, K });
}

const backends: Backend[] = [];
if (backendNames.includes("cpu")) backends.push(cpu);
if (backendNames.includes("webgpu")) {
  try {
    backends.push(await getDevice({ backend: "webgpu", quiet: true }));
  } catch (e) {
    console.error(`bench: no WebGPU backend (${(e as Error).message})`);
  }
}

let copy: CopyResult | null = null;
const gpu = backends.find((b) => b instanceof WebGpuBackend) as WebGpuBackend | undefined;
if (values.copy && gpu) {
  const mib = copyMib.length ? copyMib : defaultCopySizes(gpu.engine);
  copy = await measureCopy(gpu.engine, mib, minMs);
}

interface Row {
  backend: string;
  adapter: string;
  shape: string;
  M: number;
  N: number;
  K: number;
  format: string;
  weightBytes: number;
  ms: number;
  ms_with_wait: number;
  gflops: number;
  gbps: number;
  x_f32?: number;
  copy_fraction?: number;
  /** WebGPU, 4-bit formats: where the code table was (`--code-table`). */
  code_table?: "private" | "workgroup";
}
const rows: Row[] = [];

// Host weights and their quantized forms, made once per N×K.
const hostW = new Map<string, Float32Array>();
const qs = new Map<string, quant.QuantizedWeight>();
const weight = (N: number, K: number) => {
  const key = `${N}x${K}`;
  if (!hostW.has(key)) hostW.set(key, randn(N * K, 1, 0.02));
  return hostW.get(key)!;
};
const quantized = (N: number, K: number, f: string) => {
  const key = `${N}x${K}:${f}`;
  if (!qs.has(key)) {
    const format = f.replace(/\+dq$/, "") as quant.QuantFormat;
    qs.set(key, quant.quantize(weight(N, K), [N, K], format, { doubleQuant: f.endsWith("+dq") }));
  }
  return qs.get(key)!;
};

/** Whether a `--formats` entry (a format, 4-bit ones maybe with +dq) is a 4-bit format. */
const is4bit = (f: string) => quant.isFormat4(f.replace(/\+dq$/, ""));

// The formats of one backend, each with the code-table setting it runs under (null: the
// backend's own); `--code-table both` runs the 4-bit ones twice on WebGPU.
function formatRuns(dev: Backend): [string, "private" | "workgroup" | null][] {
  const ct = values["code-table"];
  const tables: ("private" | "workgroup" | null)[] = ct === "both"
    ? ["private", "workgroup"]
    : [ct === "auto" ? null : ct as "private" | "workgroup"];
  return formats.flatMap((f) =>
    dev === gpu && is4bit(f)
      ? tables.map((t) => [f, t] as [string, "private" | "workgroup" | null])
      : [[f, null] as [string, null]]
  );
}

for (const dev of backends) {
  for (const s of shapes) {
    const { M, N, K } = s;
    const x = Tensor.fromArray(randn(M * K, 2), [M, K], { device: dev });
    let f32ms: number | undefined;
    for (const [f, table] of formatRuns(dev)) {
      if (dev === gpu) gpu.quantCodeTable = table;
      let t, weightBytes: number;
      if (f === "f32") {
        const w = Tensor.fromArray(weight(N, K), [N, K], { device: dev });
        t = await timePerCall(
          () => matmul(x, w, { transB: true }).dispose(),
          () => dev.sync(),
          minMs,
        );
        weightBytes = w.bytes;
        w.dispose();
        f32ms = t.ms;
      } else {
        const w = quant.toDevice(dev, quantized(N, K, f));
        t = await timePerCall(() => quant.qmatmul(x, w).dispose(), () => dev.sync(), minMs);
        weightBytes = w.bytes;
        w.dispose();
      }
      const gbps = weightBytes / t.ms / 1e6;
      rows.push({
        backend: dev.kind,
        adapter: dev.description,
        shape: s.label,
        M,
        N,
        K,
        format: f,
        weightBytes,
        ms: t.ms,
        ms_with_wait: t.msWithWait,
        gflops: (2 * M * N * K) / t.ms / 1e6,
        gbps,
        ...(f32ms !== undefined ? { x_f32: f32ms / t.ms } : {}),
        ...(copy && dev === gpu && M === 1 ? { copy_fraction: gbps / copy.best_gbps } : {}),
        ...(dev === gpu && is4bit(f) ? { code_table: gpu.codeTable() } : {}),
      });
    }
    x.dispose();
  }
}

if (values.json) {
  console.log(
    JSON.stringify(
      { bench: "qmatmul", deno: Deno.version.deno, date: new Date().toISOString(), copy, rows },
      null,
      2,
    ),
  );
} else {
  console.log("y = x · Wᵀ, x [M, K], W [N, K] in each format; f32 is matmul(x, w, {transB})");
  console.log("GB/s = bytes of the weight format / time; ×f32 = f32 time / this time");
  if (copy) {
    console.log(`copy ceiling (${copy.adapter}): ${copy.best_gbps.toFixed(1)} GB/s (read + write)`);
  }
  for (const dev of backends) {
    console.log(`\n${dev.kind}: ${dev.description}`);
    const head = ["M", "N", "K", "format", "bits/w", "ms", "GFLOP/s", "GB/s", "×f32", "×copy"];
    console.log("shape".padEnd(18) + head.map((h) => h.padStart(10)).join(""));
    for (const r of rows.filter((r) => r.backend === dev.kind)) {
      const cells = [
        String(r.M),
        String(r.N),
        String(r.K),
        r.code_table === "workgroup" ? `${r.format}/wt` : r.format,
        ((r.weightBytes * 8) / (r.N * r.K)).toFixed(3),
        r.ms.toFixed(3),
        r.gflops.toFixed(2),
        r.gbps.toFixed(2),
        r.x_f32?.toFixed(2) ?? "-",
        r.copy_fraction?.toFixed(2) ?? "-",
      ];
      console.log(r.shape.padEnd(18) + cells.map((c) => c.padStart(10)).join(""));
    }
  }
}
