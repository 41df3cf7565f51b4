/**
 * Choosing a backend: `getDevice()` gives WebGPU on a hardware adapter and the CPU reference
 * otherwise. Software adapters (Mesa's lavapipe/llvmpipe, which run WGSL on the CPU) are used
 * only when asked for: `allowSoftware`, or `LORALAB_BACKEND=webgpu`.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { CpuBackend } from "./cpu/cpu_backend.ts";
import { GpuEngine } from "./webgpu/engine.ts";
import { WebGpuBackend } from "./webgpu/webgpu_backend.ts";

/** Which backend to use; `auto` prefers a hardware WebGPU adapter. */
export type BackendChoice = "auto" | "cpu" | "webgpu";

/** Options of {@link getDevice}. */
export interface DeviceOptions {
  /** Backend to use; default: `LORALAB_BACKEND` from the environment, else `auto`. */
  backend?: BackendChoice;
  /** Accept a software (CPU-emulated) WebGPU adapter in `auto` mode. Default false. */
  allowSoftware?: boolean;
  /** Do not print the chosen backend. Default false. */
  quiet?: boolean;
}

const cache = new Map<string, Promise<Backend>>();
const announced = new Set<number>();

function envBackend(): BackendChoice | undefined {
  let v: string | undefined;
  try {
    v = Deno.env.get("LORALAB_BACKEND");
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
  if (v === undefined || v === "") return undefined;
  if (v !== "cpu" && v !== "webgpu" && v !== "auto") {
    throw new Error(`LORALAB_BACKEND=${v}: expected cpu, webgpu or auto`);
  }
  return v;
}

/** Whether an adapter emulates the GPU on the CPU (lavapipe, llvmpipe, SwiftShader, WARP). */
export function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  return info.isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader|softpipe|microsoft basic render/i.test(info.description);
}

async function openWebGpu(allowSoftware: boolean): Promise<WebGpuBackend | null> {
  if (typeof navigator === "undefined" || !navigator.gpu) return null;
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return null;
  const software = isSoftwareAdapter(adapter.info);
  if (software && !allowSoftware) return null;
  const features: GPUFeatureName[] = [];
  if (adapter.features.has("shader-f16")) features.push("shader-f16");
  if (adapter.features.has("timestamp-query")) features.push("timestamp-query");
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    },
  });
  const desc = adapter.info.description || adapter.info.device || "unknown adapter";
  // Destroy the device before the process exits. Left to process teardown, Deno 2.9.6 with lavapipe
  // sometimes aborts after all work is done ("corrupted size vs. prev_size in fastbins", about
  // 1 run in 10 of the kernel tests), which turns a finished run into exit code 134.
  globalThis.addEventListener("unload", () => device.destroy());
  return new WebGpuBackend(new GpuEngine(device, desc, software));
}

/**
 * Returns the compute backend (cached per choice). Prints `loralab: backend …` to stderr the
 * first time each backend is handed out, unless `quiet`.
 *
 * @example
 * ```ts
 * const dev = await getDevice();            // hardware WebGPU, else CPU
 * const sw = await getDevice({ backend: "webgpu" }); // any adapter, software included
 * ```
 */
export function getDevice(opts: DeviceOptions = {}): Promise<Backend> {
  const choice = opts.backend ?? envBackend() ?? "auto";
  const allowSoftware = choice === "webgpu" || (opts.allowSoftware ?? false);
  const key = `${choice}:${allowSoftware}`;
  let p = cache.get(key);
  if (!p) {
    p = (async (): Promise<Backend> => {
      if (choice === "cpu") return new CpuBackend();
      const gpu = await openWebGpu(allowSoftware);
      if (gpu) return gpu;
      if (choice === "webgpu") {
        throw new Error(
          "webgpu backend requested but no WebGPU adapter is available " +
            "(on Debian without a GPU: apt-get install mesa-vulkan-drivers)",
        );
      }
      return new CpuBackend();
    })();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p.then((b) => {
    if (!opts.quiet && !announced.has(b.id)) {
      announced.add(b.id);
      console.error(`loralab: backend ${b.kind} (${b.description})`);
    }
    return b;
  });
}

/** The CPU reference backend (a fresh instance each call is cheap, but one is shared). */
export const cpu: Backend = new CpuBackend();
