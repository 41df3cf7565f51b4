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

/** Shared storage with a reference count (reshape makes views that share it). */
interface StorageRef {
  storage: Storage;
  refs: number;
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

  /** The storage handle; throws after dispose. */
  get storage(): Storage {
    if (!this.ref) throw new Error(`tensor ${fmtShape(this.shape)} used after dispose()`);
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
    if (!dev.readMany) return Promise.all(ts.map((t) => t.toArray()));
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
    this.storage; // throws if disposed
    this.ref!.refs++;
    const out = new Tensor(this.backend, this.ref!, s, this.dtype);
    return record(out, [this], (g) => [g.reshape(this.shape)]);
  }

  /**
   * Another handle on this tensor's storage (refcounted like a reshape view) that no tape
   * records: for ops that overwrite an input in place and record themselves.
   */
  alias(): Tensor {
    this.storage; // throws if disposed
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
    if (--this.ref.refs === 0) this.backend.free(this.ref.storage);
    this.ref = null;
  }

  /** Keeps this tensor alive past the end of the enclosing {@link scope}. */
  keep(): this {
    for (const s of scopes) s.delete(this);
    return this;
  }
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
