/**
 * Tensor: a shape, a dtype and storage on a backend. Tensors are immutable values; ops make new
 * ones. Device memory is released deterministically with {@link Tensor.dispose} or by running
 * code inside {@link scope}.
 *
 * @module
 */

import {
  type Backend,
  type DType,
  DTYPE_BYTES,
  type HostArray,
  type Storage,
} from "./backend/backend.ts";
import { cpu } from "./backend/device.ts";
import { Rng } from "./rng.ts";
import { activeTape, record } from "./autograd/record.ts";

/**
 * Shared storage with a reference count (reshape makes views that share it). A tensor stored in
 * row chunks (see {@link Tensor.chunks}) has `chunks` and no storage of its own.
 */
interface StorageRef {
  storage: Storage | null;
  chunks?: Tensor[];
  refs: number;
}

/** Override of the split threshold (see {@link setSplitBytes}); null: each backend's limit. */
let splitBytesOverride: number | null = null;

/**
 * Sets the size in bytes above which new tensors of two or more dims are stored in row chunks
 * on every backend (null, the default: each backend's `maxStorageBytes`, so only tensors over a
 * GPU adapter's largest buffer are split and the CPU never splits). For tests of the split path
 * with small tensors. Returns the previous setting.
 */
export function setSplitBytes(bytes: number | null): number | null {
  const prev = splitBytesOverride;
  splitBytesOverride = bytes;
  return prev;
}

/** The size over which a tensor on `device` is stored in row chunks. */
export function splitBytes(device: Backend): number {
  return splitBytesOverride ?? device.maxStorageBytes;
}

/** Formats a shape for error messages: `[2,3]`. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

/** Product of a shape's dims (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: readonly number[], where: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(`${where}: bad shape ${fmtShape(shape)}: dims must be integers ≥ 0`);
    }
  }
}

const scopes: Set<Tensor>[] = [];

/** Options shared by the creation functions. */
export interface CreateOptions {
  /** Backend to place the tensor on (default: the CPU reference backend). */
  device?: Backend;
  /** Element type (default f32). */
  dtype?: DType;
}

/** Options of the random creation functions. */
export interface RandomOptions extends CreateOptions {
  /** Seed for a fresh generator (ignored when `rng` is given). Default 0. */
  seed?: number;
  /** Generator to draw from (its state advances). */
  rng?: Rng;
}

/** An n-dimensional array on a backend. */
export class Tensor {
  /** Dimensions, row-major. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Where the data lives. */
  readonly backend: Backend;
  private ref: StorageRef | null;

  /** Wraps a storage the caller owns (used by ops); prefer the static creators. */
  constructor(
    backend: Backend,
    storage: Storage | StorageRef,
    shape: readonly number[],
    dtype: DType,
  ) {
    this.backend = backend;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.ref = "refs" in storage ? storage : { storage, refs: 1 };
    if (scopes.length) scopes[scopes.length - 1].add(this);
  }

  /**
   * A tensor stored as row chunks: `chunks` are tensors [r_i, ...rest] of one backend and dtype
   * whose rows, in order, are the rows of the result (taken over, not copied). Used for tensors
   * larger than a backend's largest storage (a GPU adapter's `maxStorageBufferBindingSize`):
   * {@link embedding} (as the table) and {@link matmul} (as the 2-D right operand) run chunk by
   * chunk, with gradients for the chunks (a tape watches a split tensor as its chunks); reads and
   * {@link assign} work; every other op refuses it with a clear error.
   */
  static fromChunks(chunks: readonly Tensor[]): Tensor {
    if (chunks.length === 0) throw new RangeError("fromChunks: no chunks");
    const c0 = chunks[0];
    let rows = 0;
    for (const c of chunks) {
      if (
        c.backend !== c0.backend || c.dtype !== c0.dtype || c.ndim !== c0.ndim || c.ndim < 2 ||
        fmtShape(c.shape.slice(1)) !== fmtShape(c0.shape.slice(1)) || c.chunks
      ) {
        throw new RangeError(
          `fromChunks: chunks ${chunks.map((t) => fmtShape(t.shape)).join(", ")} are not row ` +
            "chunks of one backend and dtype",
        );
      }
      rows += c.shape[0];
    }
    return new Tensor(
      c0.backend,
      { storage: null, chunks: [...chunks], refs: 1 },
      [rows, ...c0.shape.slice(1)],
      c0.dtype,
    );
  }

  /**
   * The row chunks of a tensor stored split (see {@link fromChunks}), else null. Tensors over
   * {@link splitBytes} made by {@link fromArray} (and so `randn`, `uniform` and model loading)
   * are split this way.
   */
  get chunks(): readonly Tensor[] | null {
    if (!this.ref) throw new Error(`tensor ${fmtShape(this.shape)} used after dispose()`);
    return this.ref.chunks ?? null;
  }

  /** The storage handle; throws after dispose, and for a tensor stored in row chunks. */
  get storage(): Storage {
    if (!this.ref) throw new Error(`tensor ${fmtShape(this.shape)} used after dispose()`);
    if (!this.ref.storage) {
      throw new Error(
        `tensor ${fmtShape(this.shape)} (${(this.bytes / 2 ** 20).toFixed(1)} MiB) is stored in ` +
          `${this.ref.chunks!.length} row chunks, being larger than the largest buffer of ` +
          `${this.backend.description}; only embedding (as the table), matmul (as the 2-D right ` +
          "operand), reads and assign take it (a tape watches its chunks)",
      );
    }
    return this.ref.storage;
  }
  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }
  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }
  /** Bytes of device memory the elements take. */
  get bytes(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }
  /** Whether {@link dispose} has been called. */
  get disposed(): boolean {
    return this.ref === null;
  }

  /** A tensor from host data (copied). `data.length` must equal the shape's product. */
  static fromArray(
    data: ArrayLike<number>,
    shape: readonly number[],
    opts: CreateOptions = {},
  ): Tensor {
    const device = opts.device ?? cpu;
    const dtype = opts.dtype ?? (data instanceof Int32Array ? "i32" : "f32");
    checkShape(shape, "fromArray");
    if (data.length !== numel(shape)) {
      throw new RangeError(
        `fromArray: ${data.length} values do not fill shape ${fmtShape(shape)} (${numel(shape)})`,
      );
    }
    // Backends copy what they upload, so a Float32Array goes as it is (one copy, not two).
    const host: HostArray = dtype === "f32"
      ? data instanceof Float32Array ? data : Float32Array.from(data)
      : dtype === "f16"
      ? Float16Array.from(data)
      : Int32Array.from(data);
    if (dtype === "i32") {
      for (let i = 0; i < data.length; i++) {
        if (host[i] !== data[i]) {
          throw new RangeError(`fromArray: value ${data[i]} at ${i} is not an i32`);
        }
      }
    }
    const rowBytes = shape.length >= 2 ? (numel(shape) / shape[0]) * DTYPE_BYTES[dtype] : 0;
    const limit = splitBytes(device);
    if (shape.length >= 2 && host.length * DTYPE_BYTES[dtype] > limit && rowBytes > 0) {
      const maxRows = Math.floor(limit / rowBytes);
      if (maxRows < 1) {
        throw new RangeError(
          `fromArray: one row of ${fmtShape(shape)} (${rowBytes} bytes) exceeds the largest ` +
            `storage of ${device.description} (${limit} bytes)`,
        );
      }
      // Equal chunks: the fewest that fit.
      const parts = Math.ceil(shape[0] / maxRows), per = Math.ceil(shape[0] / parts);
      const rowLen = rowBytes / DTYPE_BYTES[dtype], chunks: Tensor[] = [];
      for (let r = 0; r < shape[0]; r += per) {
        const r1 = Math.min(shape[0], r + per);
        const part = host.subarray(r * rowLen, r1 * rowLen);
        chunks.push(
          new Tensor(device, device.upload(dtype, part), [r1 - r, ...shape.slice(1)], dtype),
        );
      }
      const out = Tensor.fromChunks(chunks);
      for (const c of chunks) c.keep(); // owned by `out`
      return out;
    }
    return new Tensor(device, device.upload(dtype, host), shape, dtype);
  }

  /** A zero-filled tensor. */
  static zeros(shape: readonly number[], opts: CreateOptions = {}): Tensor {
    const device = opts.device ?? cpu;
    const dtype = opts.dtype ?? "f32";
    checkShape(shape, "zeros");
    return new Tensor(device, device.zeros(dtype, numel(shape)), shape, dtype);
  }

  /** Normal draws `mean + std · N(0, 1)` from a seeded generator. */
  static randn(
    shape: readonly number[],
    opts: RandomOptions & { mean?: number; std?: number } = {},
  ): Tensor {
    checkShape(shape, "randn");
    const rng = opts.rng ?? new Rng(opts.seed ?? 0);
    const mean = opts.mean ?? 0, std = opts.std ?? 1;
    const data = new Float32Array(numel(shape));
    for (let i = 0; i < data.length; i++) data[i] = mean + std * rng.normal();
    return Tensor.fromArray(data, shape, { ...opts, dtype: opts.dtype ?? "f32" });
  }

  /** Uniform draws in [low, high) from a seeded generator. */
  static uniform(
    shape: readonly number[],
    opts: RandomOptions & { low?: number; high?: number } = {},
  ): Tensor {
    checkShape(shape, "uniform");
    const rng = opts.rng ?? new Rng(opts.seed ?? 0);
    const lo = opts.low ?? 0, hi = opts.high ?? 1;
    const data = new Float32Array(numel(shape));
    for (let i = 0; i < data.length; i++) data[i] = lo + (hi - lo) * rng.uniform();
    return Tensor.fromArray(data, shape, { ...opts, dtype: opts.dtype ?? "f32" });
  }

  /** Copies the elements to the host (flushes pending GPU work). */
  toArray(): Promise<HostArray> {
    const chunks = this.chunks;
    if (chunks) return Tensor.readAll(chunks).then((parts) => joinHost(this.dtype, parts));
    return this.backend.read(this.storage, this.dtype, this.size);
  }

  /**
   * Copies several tensors of one backend to the host with one wait where the backend can
   * (`Backend.readMany`: a GPU's readbacks share one staging buffer and one map), else one read
   * each.
   */
  static readAll(ts: readonly Tensor[]): Promise<HostArray[]> {
    if (ts.length === 0) return Promise.resolve([]);
    const dev = ts[0].backend;
    if (ts.some((t) => t.backend !== dev)) throw new Error("readAll: tensors of two backends");
    if (!dev.readMany || ts.some((t) => t.chunks)) return Promise.all(ts.map((t) => t.toArray()));
    return dev.readMany(ts.map((t) => ({ s: t.storage, dtype: t.dtype, n: t.size })));
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new RangeError(`item: tensor ${fmtShape(this.shape)} has ${this.size} elements`);
    }
    return (await this.toArray())[0];
  }

  /**
   * Overwrites this tensor's values in place from host data of the same size (used to restore
   * parameters from checkpoints; every view sharing the storage sees the new values).
   */
  assign(data: ArrayLike<number>): void {
    if (data.length !== this.size) {
      throw new RangeError(
        `assign: ${data.length} values for tensor ${fmtShape(this.shape)} (${this.size})`,
      );
    }
    const host: HostArray = this.dtype === "f32"
      ? Float32Array.from(data)
      : this.dtype === "f16"
      ? Float16Array.from(data)
      : Int32Array.from(data);
    const chunks = this.chunks;
    if (chunks) {
      let o = 0;
      for (const c of chunks) {
        c.backend.write(c.storage, host.subarray(o, o + c.size));
        o += c.size;
      }
      return;
    }
    this.backend.write(this.storage, host);
  }

  /** Same data, new shape (no copy; one dim may be -1). */
  reshape(shape: readonly number[]): Tensor {
    const s = [...shape];
    const free = s.indexOf(-1);
    if (free >= 0) {
      const rest = numel(s.filter((_, i) => i !== free));
      s[free] = rest === 0 ? 0 : this.size / rest;
    }
    checkShape(s, "reshape");
    if (numel(s) !== this.size) {
      throw new RangeError(
        `reshape: ${fmtShape(this.shape)} (${this.size}) cannot become ${fmtShape(shape)}`,
      );
    }
    if (this.chunks && fmtShape(s) !== fmtShape(this.shape)) {
      throw new RangeError(
        `reshape: ${fmtShape(this.shape)} is stored in row chunks and keeps its shape`,
      );
    }
    this.ref!.refs++;
    const out = new Tensor(this.backend, this.ref!, s, this.dtype);
    return record(out, [this], (g) => [g.reshape(this.shape)]);
  }

  /**
   * Another handle on this tensor's storage (refcounted like a reshape view) that no tape
   * records: for ops that overwrite an input in place and record themselves.
   */
  alias(): Tensor {
    this.chunks; // throws if disposed
    this.ref!.refs++;
    return new Tensor(this.backend, this.ref!, this.shape, this.dtype);
  }

  /** Whether this handle is the only one on its storage (no reshape view or alias shares it). */
  get soleOwner(): boolean {
    return this.ref !== null && this.ref.refs === 1;
  }

  /** Releases the device memory (once every view sharing it is disposed). Idempotent. */
  dispose(): void {
    if (!this.ref) return;
    if (--this.ref.refs === 0) {
      if (this.ref.storage) this.backend.free(this.ref.storage);
      for (const c of this.ref.chunks ?? []) c.dispose();
    }
    this.ref = null;
  }

  /** Keeps this tensor alive past the end of the enclosing {@link scope}. */
  keep(): this {
    for (const s of scopes) s.delete(this);
    return this;
  }
}

/** Concatenates host arrays of one dtype. */
function joinHost(dtype: DType, parts: HostArray[]): HostArray {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = dtype === "f32"
    ? new Float32Array(n)
    : dtype === "f16"
    ? new Float16Array(n)
    : new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p as never, o);
    o += p.length;
  }
  return out;
}

function collect(x: unknown, out: Set<Tensor>): void {
  if (x instanceof Tensor) out.add(x);
  else if (Array.isArray(x)) { for (const v of x) collect(v, out); }
  else if (x && typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) {
    for (const v of Object.values(x)) collect(v, out);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it, except those it returns (directly, or
 * in an array or plain object) and those marked with {@link Tensor.keep}. Async functions are
 * supported; do not interleave two scopes concurrently.
 */
export function scope<T>(fn: () => T): T;
/** Async variant of {@link scope}. */
export function scope<T>(fn: () => Promise<T>): Promise<T>;
export function scope<T>(fn: () => T | Promise<T>): T | Promise<T> {
  const made = new Set<Tensor>();
  scopes.push(made);
  const finish = (result: T): T => {
    scopes.splice(scopes.lastIndexOf(made), 1);
    const keep = new Set<Tensor>();
    collect(result, keep);
    const tape = activeTape();
    for (const t of made) {
      if (keep.has(t) || tape?.holds(t)) { // a tape's saved tensors live until its backward
        if (scopes.length) scopes[scopes.length - 1].add(t); // hand to the outer scope
      } else t.dispose();
    }
    return result;
  };
  let r: T | Promise<T>;
  try {
    r = fn();
  } catch (e) {
    scopes.splice(scopes.lastIndexOf(made), 1);
    for (const t of made) t.dispose();
    throw e;
  }
  if (r instanceof Promise) {
    return r.then(finish, (e) => {
      scopes.splice(scopes.lastIndexOf(made), 1);
      for (const t of made) t.dispose();
      throw e;
    });
  }
  return finish(r);
}
