/**
 * Device-to-device copy bandwidth of the WebGPU adapter: the ceiling that the batch-1 (memory
 * bound) quantized matmul is measured against. Two ways, each timed with {@link timePerCall}
 * (many copies per wait, slope between k and 2k copies):
 * - `copyBufferToBuffer`: the driver's copy (vkCmdCopyBuffer on Vulkan);
 * - `wgsl-vec4`: a compute kernel, one `vec4<u32>` per thread.
 * GB/s counts the bytes read plus the bytes written (2 × size) per copy. The source holds a hash
 * pattern, not zeros (some GPUs compress zero-filled memory).
 *
 * Flags: `--json`, `--sizes-mib 64,256,1024` (default on a hardware adapter; 4,16 on a software
 * one), `--min-ms 300`. Also imported by bench/qmatmul.ts (`--copy`) so that the ceiling comes
 * from the same run.
 */

import { parseArgs } from "node:util";
import { getDevice } from "../lib/mod.ts";
import { WebGpuBackend } from "../lib/backend/webgpu/mod.ts";
import { type GpuEngine, groups1d, type Kernel } from "../lib/backend/webgpu/engine.ts";
import { MAIN_1D, N_PARAMS, nParams, prelude } from "../lib/backend/webgpu/kernels/common.ts";
import { timePerCall } from "./timing.ts";

/** One measured copy. */
export interface CopyRow {
  /** `copyBufferToBuffer` or `wgsl-vec4`. */
  method: string;
  /** Bytes copied per call. */
  bytes: number;
  /** Milliseconds per copy (slope). */
  ms: number;
  /** (read + written bytes) / time, in GB/s (10⁹ bytes). */
  gbps: number;
}

/** The copies measured on one adapter, with the best figure as the bandwidth ceiling. */
export interface CopyResult {
  /** The adapter's description. */
  adapter: string;
  /** Each method at each size. */
  rows: CopyRow[];
  /** Highest GB/s over all rows. */
  best_gbps: number;
}

// O[i] = S[i], vec4<u32> per thread; params: n (vec4 count).
const COPY: Kernel = {
  key: "bench:copy-vec4",
  code: `${prelude(N_PARAMS)}
@group(0) @binding(1) var<storage, read> S: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> O: array<vec4<u32>>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  O[i] = S[i];
}`,
};

// O[i] = a hash of i (a non-zero, incompressible source); params: n (vec4 count).
const FILL: Kernel = {
  key: "bench:fill-hash",
  code: `${prelude(N_PARAMS)}
@group(0) @binding(1) var<storage, read_write> O: array<vec4<u32>>;
${MAIN_1D} {
  let i = gidx(gid, nwg);
  if (i >= p_n()) { return; }
  let h = (i ^ 0x9e3779b9u) * 2654435761u;
  O[i] = vec4<u32>(h, h * 747796405u, h ^ (h >> 15u), (h + 12345u) * 2246822519u);
}`,
};

/** Default copy sizes in MiB: large on a hardware adapter, small on a software one. */
export function defaultCopySizes(engine: GpuEngine): number[] {
  return engine.isSoftware ? [4, 16] : [64, 256, 1024];
}

/** Measures both copy methods at each size (MiB) on the engine's device. */
export async function measureCopy(
  engine: GpuEngine,
  sizesMiB: number[],
  minMs: number,
): Promise<CopyResult> {
  const max = Math.min(
    engine.device.limits.maxStorageBufferBindingSize,
    engine.device.limits.maxBufferSize,
  );
  const rows: CopyRow[] = [];
  await engine.sync();
  for (const mib of sizesMiB) {
    const bytes = mib * 2 ** 20;
    if (bytes > max) {
      console.error(`bench copy: ${mib} MiB exceeds the device's buffer limit ${max}; skipped`);
      continue;
    }
    const n4 = bytes / 16;
    const src = engine.alloc(bytes), dst = engine.alloc(bytes);
    engine.run(FILL, [src], nParams({ n: n4 }), groups1d(n4));
    await engine.sync();
    const dev = engine.device;
    let enc: GPUCommandEncoder | null = null;
    const t1 = await timePerCall(
      () => {
        enc ??= dev.createCommandEncoder();
        enc.copyBufferToBuffer(src, 0, dst, 0, bytes);
      },
      async () => {
        if (enc) dev.queue.submit([enc.finish()]);
        enc = null;
        await dev.queue.onSubmittedWorkDone();
        engine.checkErrors();
      },
      minMs,
    );
    rows.push({ method: "copyBufferToBuffer", bytes, ms: t1.ms, gbps: (2 * bytes) / t1.ms / 1e6 });
    const t2 = await timePerCall(
      () => engine.run(COPY, [src, dst], nParams({ n: n4 }), groups1d(n4)),
      () => engine.sync(),
      minMs,
    );
    rows.push({ method: "wgsl-vec4", bytes, ms: t2.ms, gbps: (2 * bytes) / t2.ms / 1e6 });
    engine.release(src);
    engine.release(dst);
    engine.trim();
  }
  return {
    adapter: engine.description,
    rows,
    best_gbps: Math.max(0, ...rows.map((r) => r.gbps)),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      json: { type: "boolean", default: false },
      "sizes-mib": { type: "string" },
      "min-ms": { type: "string", default: "300" },
    },
  });
  const minMs = Number(values["min-ms"]);
  const sizes = values["sizes-mib"]?.split(",").map(Number);
  if (!(minMs > 0) || sizes?.some((s) => !Number.isInteger(s) || s < 1)) {
    console.error("bench copy: --sizes-mib takes positive integers (MiB), --min-ms a number");
    Deno.exit(2);
  }
  const dev = await getDevice({ backend: "webgpu", quiet: true });
  if (!(dev instanceof WebGpuBackend)) throw new Error("bench copy: no WebGPU backend");
  const r = await measureCopy(dev.engine, sizes ?? defaultCopySizes(dev.engine), minMs);
  if (values.json) {
    console.log(JSON.stringify(
      { bench: "copy", deno: Deno.version.deno, date: new Date().toISOString(), ...r },
      null,
      2,
    ));
  } else {
    console.log(`device-to-device copy, GB/s = (read + written bytes) / time; ${r.adapter}`);
    for (const row of r.rows) {
      console.log(
        `${row.method.padEnd(20)} ${(row.bytes / 2 ** 20).toFixed(0).padStart(6)} MiB ${
          row.ms.toFixed(3).padStart(9)
        } ms ${row.gbps.toFixed(1).padStart(9)} GB/s`,
      );
    }
    console.log(`best: ${r.best_gbps.toFixed(1)} GB/s`);
  }
}
