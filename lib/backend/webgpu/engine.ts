/**
 * The WebGPU engine: one device, a buffer pool, a pipeline cache and command batching.
 *
 * Ops record compute passes into one open command encoder. The encoder is submitted when a
 * readback needs its results, before an upload (so that `queue.writeBuffer` cannot overtake
 * recorded work that reads a recycled buffer), or when {@link MAX_BATCH} dispatches are pending.
 * Each dispatch's parameters go into a slot of one uniform "ring" buffer, written just before the
 * submit; the queue orders that write after every earlier submission, so one ring is enough.
 *
 * @module
 */

/** Dispatches recorded before the encoder is submitted. */
export const MAX_BATCH = 256;
/** Uniform slot size: the minimum dynamic-offset alignment WebGPU guarantees. */
const SLOT_BYTES = 256;
/** u32 words of parameters each kernel may receive (`array<vec4<u32>, 8>`). */
export const PARAM_WORDS = 32;
/** Threads per workgroup of the 1-D kernels. */
export const WG = 256;

/** A WGSL kernel: `key` names it in the pipeline cache, `code` is its full source. */
export interface Kernel {
  /** Cache key: kernel family plus every constant baked into the code. */
  key: string;
  /** Full WGSL source. */
  code: string;
}

/** Raw bit pattern of an f32, for passing floats through the u32 parameter block. */
export function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}

/** Workgroup counts for `n` threads of a 1-D kernel, folded into y past 65535 groups. */
export function groups1d(n: number): [number, number, number] {
  const g = Math.max(1, Math.ceil(n / WG));
  const x = Math.min(g, 65535);
  return [x, Math.ceil(g / x), 1];
}

/** GPU time of one kernel key over a profiled stretch (see {@link GpuEngine.startProfile}). */
export interface KernelTime {
  /** The kernel's pipeline key (its family before the first `:`). */
  key: string;
  /** Dispatches timed. */
  count: number;
  /** Summed GPU time between each dispatch's pass start and end, in milliseconds. */
  ms: number;
}

/** Timestamp queries of one submit: a buffer to map and the kernel key of each query pair. */
interface ProfileBatch {
  staging: GPUBuffer;
  resolve: GPUBuffer;
  keys: string[];
}

/** Owns a GPUDevice and everything needed to run kernels on it. */
export class GpuEngine {
  /** The device. */
  readonly device: GPUDevice;
  /** The adapter's description, for logs. */
  readonly description: string;
  /** Whether the device was created with `shader-f16`. */
  readonly hasF16: boolean;
  /** Whether the adapter is a CPU (software) implementation. */
  readonly isSoftware: boolean;
  /** Whether the device was created with `timestamp-query` (needed by {@link startProfile}). */
  readonly hasTimestamps: boolean;

  private pool = new Map<number, GPUBuffer[]>();
  private pipelines = new Map<string, { pipe: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pending = 0;
  private ring: GPUBuffer;
  private ringData = new Uint32Array((MAX_BATCH * SLOT_BYTES) / 4);
  private errors: string[] = [];
  private prof: { set: GPUQuerySet; keys: string[]; batches: ProfileBatch[] } | null = null;
  /** Bytes currently handed out from the pool (live tensors). */
  liveBytes = 0;
  /** Peak of {@link liveBytes}. */
  peakBytes = 0;
  /** Dispatches recorded since the engine was made. */
  dispatches = 0;
  /** Dispatches recorded since the engine was made, by kernel key (for profiling fusion). */
  readonly dispatchesByKernel: Map<string, number> = new Map();
  /** Command buffers submitted (`queue.submit`) since the engine was made. */
  submits = 0;
  /**
   * GPU buffers created since the engine was made (pool misses of {@link alloc}). A training step
   * in steady state should create none: a new buffer costs a driver allocation and, in wgpu, a
   * zero-fill on first use.
   */
  buffersCreated = 0;
  /**
   * Times the host waited for the GPU since the engine was made: each `mapAsync` of a readback
   * or profile and each `onSubmittedWorkDone` of {@link sync} (reads issued together, as
   * {@link readMany} does, count once).
   */
  waits = 0;

  /** Wraps a device; `isSoftware` marks CPU-emulated adapters such as lavapipe. */
  constructor(device: GPUDevice, description: string, isSoftware: boolean) {
    this.device = device;
    this.description = description;
    this.isSoftware = isSoftware;
    this.hasF16 = device.features.has("shader-f16");
    this.hasTimestamps = device.features.has("timestamp-query");
    this.ring = device.createBuffer({
      size: MAX_BATCH * SLOT_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.addEventListener("uncapturederror", (e) => {
      const msg = (e as GPUUncapturedErrorEvent).error.message;
      this.errors.push(msg);
      console.error(`loralab webgpu error: ${msg}`);
    });
  }

  /** Throws if the device reported any error since the last check. */
  checkErrors(): void {
    if (this.errors.length) {
      const all = this.errors.splice(0);
      throw new Error(`WebGPU error: ${all.join("; ")}`);
    }
  }

  /** A storage buffer of at least `bytes` bytes, from the pool when one fits exactly. */
  alloc(bytes: number): GPUBuffer {
    const size = Math.max(SLOT_BYTES, Math.ceil(bytes / SLOT_BYTES) * SLOT_BYTES);
    const max = this.device.limits.maxStorageBufferBindingSize;
    if (size > max) {
      throw new RangeError(`webgpu: a buffer of ${bytes} bytes exceeds the device limit ${max}`);
    }
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    const free = this.pool.get(size);
    if (free && free.length) return free.pop()!;
    this.buffersCreated++;
    return this.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  }

  /** Hands a buffer back to the pool. Safe while recorded work still uses it (queue order). */
  release(buf: GPUBuffer): void {
    this.liveBytes -= buf.size;
    let list = this.pool.get(buf.size);
    if (!list) this.pool.set(buf.size, list = []);
    list.push(buf);
  }

  /** Destroys every pooled (free) buffer. */
  trim(): void {
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
  }

  /** Writes host bytes into a buffer, after submitting recorded work that might read it. */
  write(buf: GPUBuffer, data: ArrayBufferView): void {
    if (data.byteLength === 0) return; // Deno 2.9.6 panics on an empty writeBuffer
    this.flush();
    // writeBuffer needs a multiple of 4 bytes.
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
    padded.set(bytes);
    this.device.queue.writeBuffer(buf, 0, padded);
  }

  /** The open command encoder for non-compute commands (ends an open compute pass first). */
  private enc(): GPUCommandEncoder {
    this.endPass();
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  /**
   * The compute pass for the next dispatch, of kernel `key`. Consecutive dispatches share one pass
   * (WebGPU orders each dispatch's storage writes before the next dispatch's reads: every dispatch
   * is its own usage scope), which costs far less per dispatch than a pass each. While profiling,
   * each dispatch gets a pass of its own, with timestamps at its start and end.
   */
  private computePass(key: string): GPUComputePassEncoder {
    if (this.prof) this.endPass();
    if (!this.pass) {
      if (!this.encoder) this.encoder = this.device.createCommandEncoder();
      let timestampWrites: GPUComputePassTimestampWrites | undefined;
      if (this.prof) {
        const i = this.prof.keys.push(key) - 1;
        timestampWrites = {
          querySet: this.prof.set,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        };
      }
      this.pass = this.encoder.beginComputePass({ timestampWrites });
    }
    return this.pass;
  }

  /** Ends the open compute pass, if any. */
  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** The compiled pipeline of a kernel and its bind group layout, from the cache when possible. */
  private pipeline(k: Kernel): { pipe: GPUComputePipeline; layout: GPUBindGroupLayout } {
    let p = this.pipelines.get(k.key);
    if (!p) {
      const module = this.device.createShaderModule({ code: k.code, label: k.key });
      const pipe = this.device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
        label: k.key,
      });
      p = { pipe, layout: pipe.getBindGroupLayout(0) };
      this.pipelines.set(k.key, p);
    }
    return p;
  }

  /**
   * Records one dispatch of kernel `k`: binding 0 is the parameter block, bindings 1… are
   * `buffers` in order.
   */
  run(k: Kernel, buffers: GPUBuffer[], params: number[], groups: [number, number, number]): void {
    if (params.length > PARAM_WORDS) throw new Error(`${k.key}: too many parameters`);
    if (this.pending >= MAX_BATCH) this.flush();
    const slot = this.pending++;
    this.ringData.fill(0, (slot * SLOT_BYTES) / 4, ((slot + 1) * SLOT_BYTES) / 4);
    for (let i = 0; i < params.length; i++) this.ringData[(slot * SLOT_BYTES) / 4 + i] = params[i];
    const { pipe, layout } = this.pipeline(k);
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: this.ring, offset: slot * SLOT_BYTES, size: 128 } },
    ];
    buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: { buffer: b } }));
    const bind = this.device.createBindGroup({ layout, entries });
    const pass = this.computePass(k.key);
    pass.setPipeline(pipe);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    this.dispatches++;
    this.dispatchesByKernel.set(k.key, (this.dispatchesByKernel.get(k.key) ?? 0) + 1);
  }

  /**
   * Starts timing every dispatch on the GPU (timestamp queries): each dispatch then gets a compute
   * pass of its own, which adds a little per-dispatch cost, so time whole steps without it and
   * profile separately. Throws when the device has no `timestamp-query`.
   */
  startProfile(): void {
    if (!this.hasTimestamps) {
      throw new Error(`webgpu: ${this.description} has no timestamp-query; profiling needs it`);
    }
    if (this.prof) throw new Error("webgpu: a profile is already running");
    this.flush();
    const set = this.device.createQuerySet({ type: "timestamp", count: 2 * MAX_BATCH });
    this.prof = { set, keys: [], batches: [] };
  }

  /**
   * Ends the profile started by {@link startProfile}: waits for the work, and returns the GPU
   * time of each kernel key, longest first.
   */
  async stopProfile(): Promise<KernelTime[]> {
    const prof = this.prof;
    if (!prof) throw new Error("webgpu: no profile is running");
    this.flush();
    this.prof = null;
    const totals = new Map<string, KernelTime>();
    for (const b of prof.batches) {
      this.waits++;
      await b.staging.mapAsync(GPUMapMode.READ);
      const t = new BigUint64Array(b.staging.getMappedRange());
      b.keys.forEach((key, i) => {
        const e = totals.get(key) ?? { key, count: 0, ms: 0 };
        const dt = t[2 * i + 1] - t[2 * i];
        e.count++;
        e.ms += dt > 0n ? Number(dt) / 1e6 : 0; // a pass may read as ≤ 0 on some drivers
        totals.set(key, e);
      });
      b.staging.unmap();
      b.staging.destroy();
      b.resolve.destroy();
    }
    prof.set.destroy();
    this.checkErrors();
    return [...totals.values()].sort((a, b) => b.ms - a.ms);
  }

  /** Submits recorded work (without waiting for it). */
  flush(): void {
    this.endPass();
    if (!this.encoder) return;
    if (this.prof && this.prof.keys.length) { // resolve this submit's timestamps into a buffer
      const bytes = this.prof.keys.length * 16;
      const resolve = this.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      const staging = this.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      this.encoder.resolveQuerySet(this.prof.set, 0, 2 * this.prof.keys.length, resolve, 0);
      this.encoder.copyBufferToBuffer(resolve, 0, staging, 0, bytes);
      this.prof.batches.push({ staging, resolve, keys: this.prof.keys });
      this.prof.keys = [];
    }
    if (this.pending) {
      this.device.queue.writeBuffer(
        this.ring,
        0,
        this.ringData,
        0,
        (this.pending * SLOT_BYTES) / 4,
      );
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.submits++;
    this.encoder = null;
    this.pending = 0;
  }

  /** Submits recorded work and waits until the GPU has finished it. */
  async sync(): Promise<void> {
    this.flush();
    this.waits++;
    await this.device.queue.onSubmittedWorkDone();
    this.checkErrors();
  }

  /** Copies `bytes` bytes of a buffer back to the host. */
  async read(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    return (await this.readMany([{ buf, bytes }]))[0];
  }

  /**
   * Copies the first `bytes` bytes of each buffer back to the host with one submit and one wait:
   * every part goes into one staging buffer (at 256-byte aligned offsets), mapped once.
   */
  async readMany(parts: readonly { buf: GPUBuffer; bytes: number }[]): Promise<ArrayBuffer[]> {
    const offs: number[] = [];
    let size = 0;
    for (const p of parts) {
      offs.push(size);
      size += Math.ceil(Math.max(4, p.bytes) / SLOT_BYTES) * SLOT_BYTES;
    }
    const staging = this.device.createBuffer({
      size: Math.max(4, size),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.enc();
    parts.forEach((p, i) =>
      enc.copyBufferToBuffer(p.buf, 0, staging, offs[i], Math.max(4, Math.ceil(p.bytes / 4) * 4))
    );
    this.flush();
    this.waits++;
    await staging.mapAsync(GPUMapMode.READ);
    const range = staging.getMappedRange();
    const out = parts.map((p, i) => range.slice(offs[i], offs[i] + p.bytes));
    staging.unmap();
    staging.destroy();
    this.checkErrors();
    return out;
  }
}
