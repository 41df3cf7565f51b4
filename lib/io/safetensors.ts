/**
 * Reader and writer for the safetensors format (https://github.com/huggingface/safetensors).
 *
 * Layout of a file:
 *
 * ```
 * [8 bytes]  N, the header length, unsigned 64-bit little-endian
 * [N bytes]  UTF-8 JSON: {"__metadata__": {str: str}, "name": {"dtype": "F32",
 *            "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * [rest]     the data section; offsets are relative to its start; little-endian, row-major
 * ```
 *
 * Reading is strict: the whole header is parsed and every tensor validated before anything is
 * returned, so a bad file never comes back half-loaded. Each tensor's bytes are copied into
 * their own `ArrayBuffer`, so typed views ({@link tensorView}) are always aligned.
 *
 * Typed views use the host byte order; every platform Deno runs on is little-endian, which is
 * the byte order of the file.
 *
 * @module
 */

import { fromBf16Bits, fromF16Bits } from "../quant/f16.ts";
import { readFileChecked } from "./read_file.ts";

/** Element types understood here, with their size in bytes (see {@link DTYPE_SIZES}). */
export type Dtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "F8_E4M3"
  | "F8_E5M2"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/** Size in bytes of one element of each {@link Dtype}. */
export const DTYPE_SIZES: Readonly<Record<Dtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** Largest header accepted on read, in bytes (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor: its element type, its shape and its raw little-endian, row-major bytes. */
export interface SafetensorsTensor {
  /** Element type. */
  dtype: Dtype;
  /** Dimensions; `[]` is a scalar (one element). */
  shape: number[];
  /** Raw bytes, `product(shape) * DTYPE_SIZES[dtype]` long. */
  data: Uint8Array;
}

/** A parsed file: the tensors by name and the string-to-string `__metadata__` map. */
export interface SafetensorsFile {
  /** Tensors by name, in the order of their data offsets. */
  tensors: Map<string, SafetensorsTensor>;
  /** The `__metadata__` entries; `{}` when the file has none. */
  metadata: Record<string, string>;
}

/** Typed array returned by {@link tensorView}, depending on the dtype. */
export type TensorView =
  | Float64Array
  | Float32Array
  | Uint16Array
  | Uint8Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array;

/** Returns true when `s` names a {@link Dtype}. */
export function isDtype(s: unknown): s is Dtype {
  return typeof s === "string" && Object.hasOwn(DTYPE_SIZES, s);
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * A typed view on a tensor's bytes: F64 -> Float64Array, F32 -> Float32Array, F16 and BF16 ->
 * Uint16Array (the raw bits), I64 -> BigInt64Array, U64 -> BigUint64Array, I32 -> Int32Array,
 * U32 -> Uint32Array, I16 -> Int16Array, U16 -> Uint16Array, I8 -> Int8Array, U8, BOOL and F8_*
 * -> Uint8Array. The view shares memory with `t.data`; if `t.data` is not aligned for the
 * element size, the bytes are copied first.
 */
export function tensorView(t: SafetensorsTensor): TensorView {
  const size = DTYPE_SIZES[t.dtype];
  let bytes = t.data;
  if (bytes.byteOffset % size !== 0) bytes = bytes.slice();
  const { buffer, byteOffset } = bytes;
  const n = bytes.byteLength / size;
  switch (t.dtype) {
    case "F64":
      return new Float64Array(buffer, byteOffset, n);
    case "F32":
      return new Float32Array(buffer, byteOffset, n);
    case "F16":
    case "BF16":
    case "U16":
      return new Uint16Array(buffer, byteOffset, n);
    case "I64":
      return new BigInt64Array(buffer, byteOffset, n);
    case "U64":
      return new BigUint64Array(buffer, byteOffset, n);
    case "I32":
      return new Int32Array(buffer, byteOffset, n);
    case "U32":
      return new Uint32Array(buffer, byteOffset, n);
    case "I16":
      return new Int16Array(buffer, byteOffset, n);
    case "I8":
      return new Int8Array(buffer, byteOffset, n);
    case "U8":
    case "BOOL":
    case "F8_E4M3":
    case "F8_E5M2":
      return new Uint8Array(buffer, byteOffset, n);
  }
}

/** A tensor's values as f32: F32 as is, F16/BF16/F64 converted; other dtypes are an error. */
export function toF32(name: string, t: SafetensorsTensor): Float32Array {
  const v = tensorView(t);
  switch (t.dtype) {
    case "F32":
      return v as Float32Array;
    case "F16":
      return fromF16Bits(v as Uint16Array);
    case "BF16":
      return fromBf16Bits(v as Uint16Array);
    case "F64":
      return Float32Array.from(v as Float64Array);
    default:
      throw new Error(`${name} is ${t.dtype}; only F32, F16, BF16 and F64 weights are supported`);
  }
}

/**
 * Builds a tensor from a typed array (or any ArrayBufferView) by copying its bytes. The byte
 * length must equal `product(shape) * DTYPE_SIZES[dtype]`; e.g.
 * `tensorFromArray("F32", [2, 2], new Float32Array([1, 2, 3, 4]))`.
 */
export function tensorFromArray(
  dtype: Dtype,
  shape: number[],
  values: ArrayBufferView,
): SafetensorsTensor {
  const data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
  const t = { dtype, shape: [...shape], data };
  checkTensor("tensorFromArray", "(new tensor)", t);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Reading

/**
 * Parses a whole safetensors file held in memory. Throws an `Error` whose message starts with
 * `safetensors:` and names the problem (and the tensor) for: a file shorter than 8 bytes, a
 * header length beyond the file or over {@link MAX_HEADER_BYTES}, a header that is not UTF-8
 * JSON or not an object, a duplicate top-level key, an unknown dtype, a bad shape, bad
 * data_offsets, offsets out of range, a byte length that does not match the shape, overlapping
 * tensors, holes between tensors or bytes left over at the end, and `__metadata__` that is not
 * a map of strings. Unknown extra fields inside a tensor entry are ignored (as the reference
 * implementation does). Each tensor's bytes are copied, so the result does not alias `bytes`.
 */
export function parseSafetensors(bytes: Uint8Array): SafetensorsFile {
  const n = headerLength(bytes.subarray(0, 8), bytes.byteLength);
  const { entries, metadata } = parseHeader(bytes.subarray(8, 8 + n), bytes.byteLength - 8 - n);
  // Everything is valid: now copy the data out.
  const tensors = new Map<string, SafetensorsTensor>();
  for (const t of entries) {
    const data = bytes.slice(8 + n + t.begin, 8 + n + t.end);
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data });
  }
  return { tensors, metadata };
}

/** One tensor's entry in a header: offsets relative to the data section. */
export interface HeaderEntry {
  /** Tensor name. */
  name: string;
  /** Element type. */
  dtype: Dtype;
  /** Dimensions. */
  shape: number[];
  /** First byte, relative to the data section. */
  begin: number;
  /** One past the last byte, relative to the data section. */
  end: number;
}

/**
 * The header length N from a file's first 8 bytes, checked against the file size and
 * {@link MAX_HEADER_BYTES}. Throws `safetensors: …` for a short file or a bad length.
 */
export function headerLength(first8: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || first8.byteLength < 8) {
    throw new Error(`safetensors: file too short (${fileSize} bytes, need at least 8)`);
  }
  const n64 = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(`safetensors: header length ${n64} is too large (limit ${MAX_HEADER_BYTES})`);
  }
  const n = Number(n64);
  if (8 + n > fileSize) {
    throw new Error(
      `safetensors: header length ${n} goes beyond the end of the file (${fileSize} bytes)`,
    );
  }
  return n;
}

/**
 * Parses and validates a header (the N bytes after the length) for a data section of
 * `dataLength` bytes: every check {@link parseSafetensors} lists. The one strict reader of both
 * the in-memory parser and the lazy one of Hugging Face folders. Entries come sorted by offset.
 */
export function parseHeader(
  headerBytes: Uint8Array,
  dataLength: number,
): { entries: HeaderEntry[]; metadata: Record<string, string> } {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw new Error("safetensors: header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    throw new Error("safetensors: header is not valid JSON");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new Error("safetensors: header is not a JSON object");
  }
  const dup = firstDuplicateKey(text);
  if (dup !== undefined) {
    throw new Error(`safetensors: duplicate key "${dup}" in header`);
  }

  const raw = header as Record<string, unknown>;
  const metadata = parseMetadata(raw["__metadata__"]);

  // Validate each entry on its own, then their layout together.
  const entries: HeaderEntry[] = [];
  for (const [name, r] of Object.entries(raw)) {
    if (name === "__metadata__") continue;
    entries.push({ name, ...parseTensorInfo(name, r, dataLength) });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev = "";
  for (const t of entries) {
    if (t.begin < pos) {
      throw new Error(
        `safetensors: tensor "${t.name}" [${t.begin}, ${t.end}) overlaps tensor "${prev}"` +
          ` (which ends at ${pos})`,
      );
    }
    if (t.begin > pos) {
      throw new Error(
        `safetensors: hole in data section: bytes [${pos}, ${t.begin}) before tensor` +
          ` "${t.name}" belong to no tensor`,
      );
    }
    pos = t.end;
    prev = t.name;
  }
  if (pos !== dataLength) {
    throw new Error(
      `safetensors: ${dataLength - pos} bytes left over at the end of the data section` +
        ` (tensors cover ${pos} of ${dataLength} bytes)`,
    );
  }
  return { entries, metadata };
}

function parseMetadata(raw: unknown): Record<string, string> {
  if (raw === undefined) return {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error("safetensors: __metadata__ is not a JSON object");
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== "string") {
      throw new Error(`safetensors: __metadata__ value for "${k}" is not a string`);
    }
    out[k] = v;
  }
  return out;
}

function parseTensorInfo(
  name: string,
  raw: unknown,
  dataLength: number,
): { dtype: Dtype; shape: number[]; begin: number; end: number } {
  const where = `tensor "${name}"`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error(`safetensors: ${where}: entry is not a JSON object`);
  }
  const info = raw as Record<string, unknown>;
  if (!isDtype(info.dtype)) {
    throw new Error(`safetensors: ${where}: unknown dtype ${JSON.stringify(info.dtype)}`);
  }
  const dtype = info.dtype;
  const shape = info.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(
      `safetensors: ${where}: shape ${
        JSON.stringify(shape)
      } is not an array of non-negative integers`,
    );
  }
  const offs = info.data_offsets;
  if (
    !Array.isArray(offs) || offs.length !== 2 ||
    !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[0] > offs[1]
  ) {
    throw new Error(
      `safetensors: ${where}: data_offsets ${
        JSON.stringify(offs)
      } is not [begin, end] with integers 0 <= begin <= end`,
    );
  }
  const [begin, end] = offs as [number, number];
  if (end > dataLength) {
    throw new Error(
      `safetensors: ${where}: data_offsets [${begin}, ${end}] out of range` +
        ` (data section is ${dataLength} bytes)`,
    );
  }
  const expected = numElements(shape) * DTYPE_SIZES[dtype];
  if (expected !== end - begin) {
    throw new Error(
      `safetensors: ${where}: byte length ${end - begin} does not match shape` +
        ` [${shape.join(", ")}] of ${dtype} (expected ${expected} bytes)`,
    );
  }
  return { dtype, shape: shape as number[], begin, end };
}

/**
 * Returns the first key that appears twice at the top level of a JSON object text, or
 * undefined. `JSON.parse` keeps the last of duplicate keys silently; this scan finds them.
 * The text must already be valid JSON.
 */
function firstDuplicateKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const token = text.slice(i, j + 1);
      i = j + 1;
      if (depth !== 1) continue;
      let k = i;
      while (k < text.length && /\s/.test(text[k])) k++;
      if (text[k] !== ":") continue;
      const key = JSON.parse(token) as string;
      if (seen.has(key)) return key;
      seen.add(key);
      continue;
    }
    if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
    i++;
  }
  return undefined;
}

/**
 * Reads and parses a safetensors file (see {@link parseSafetensors} for the checks); the file
 * must be a regular file the process may read, links resolved (see lib/io/read_file.ts).
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readFileChecked(path));
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Tensors to write: a Map or a plain object from name to tensor. */
export type TensorsInput = Map<string, SafetensorsTensor> | Record<string, SafetensorsTensor>;

function checkTensor(fn: string, name: string, t: SafetensorsTensor): void {
  const where = `${fn}: tensor "${name}"`;
  if (!isDtype(t.dtype)) throw new Error(`${where}: unknown dtype ${JSON.stringify(t.dtype)}`);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(
      `${where}: shape ${JSON.stringify(t.shape)} is not an array of non-negative integers`,
    );
  }
  if (!(t.data instanceof Uint8Array)) throw new Error(`${where}: data is not a Uint8Array`);
  const expected = numElements(t.shape) * DTYPE_SIZES[t.dtype];
  if (t.data.byteLength !== expected) {
    throw new Error(
      `${where}: data has ${t.data.byteLength} bytes, shape [${t.shape.join(", ")}] of` +
        ` ${t.dtype} needs ${expected}`,
    );
  }
}

/**
 * Serializes tensors to the bytes of a safetensors file. Layout choices:
 * - tensors are stored sorted by name (JavaScript string order, i.e. by UTF-16 code unit), in
 *   the header and in the data section, with no holes;
 * - the header lists `__metadata__` first (only when `metadata` has entries), then the tensors
 *   in the same order, as compact JSON;
 * - the header is padded with spaces to a multiple of 8 bytes, as the reference implementation
 *   does, so the data section starts 8-byte aligned.
 *
 * Throws if a tensor is invalid (dtype, shape, byte length), a tensor is named `__metadata__`,
 * or a metadata value is not a string.
 */
export function serializeSafetensors(
  tensors: TensorsInput,
  metadata?: Record<string, string>,
): Uint8Array {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new Error(`serializeSafetensors: metadata value for "${k}" is not a string`);
      }
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const [name, t] of list) {
    if (name === "__metadata__") {
      throw new Error('serializeSafetensors: "__metadata__" is reserved, not a tensor name');
    }
    checkTensor("serializeSafetensors", name, t);
    const end = offset + t.data.byteLength;
    // Build the JSON by hand so key order is exactly ours (JSON.stringify of an object would put
    // integer-like names such as "0" first).
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],` +
        `"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  let headerBytes = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(headerBytes.byteLength / 8) * 8;
  if (padded !== headerBytes.byteLength) {
    const p = new Uint8Array(padded).fill(0x20); // ASCII space
    p.set(headerBytes);
    headerBytes = p;
  }

  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(headerBytes, 8);
  let pos = 8 + padded;
  for (const [, t] of list) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}

/**
 * Writes a safetensors file atomically: the bytes go to `<path>.tmp-<random>` in the same
 * directory, are flushed to disk, then the temp file is renamed over `path`. On any failure the
 * temp file is removed and an existing file at `path` is left untouched. Serialization (and so
 * validation) happens before anything is written. See {@link serializeSafetensors} for layout.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorsInput,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = serializeSafetensors(tensors, metadata);
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let written = 0;
      while (written < bytes.byteLength) {
        written += await file.write(bytes.subarray(written));
      }
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
