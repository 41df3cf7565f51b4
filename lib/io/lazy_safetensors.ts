/**
 * Lazy safetensors: the header is read and checked when the file opens, tensor bytes on demand,
 * one tensor at a time (how model folders stream without holding a whole file in memory).
 *
 * @module
 */

import { openChecked } from "./read_file.ts";
import { type Dtype, headerLength, parseHeader, type SafetensorsTensor } from "./safetensors.ts";

/** Where one tensor lives in a safetensors file. */
export interface TensorInfo {
  /** Element type. */
  dtype: Dtype;
  /** Dimensions. */
  shape: number[];
  /** Byte offset of the data in the file. */
  offset: number;
  /** Byte length of the data. */
  length: number;
}

/** A safetensors file whose header is parsed and whose tensors are read one at a time. */
export class LazySafetensors {
  private constructor(
    readonly path: string,
    readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
    private file: Deno.FsFile,
  ) {}

  /**
   * Opens `path` (a regular file the process may read, links resolved) and checks its header
   * with the same strict reader as {@link parseSafetensors}: dtypes, shapes, byte lengths, no
   * overlaps, holes, trailing bytes or duplicate keys, string-only `__metadata__`.
   */
  static async open(path: string): Promise<LazySafetensors> {
    const { file, info } = await openChecked(path);
    try {
      const size = info.size;
      const n = headerLength(await readAt(file, 0, Math.min(8, size)), size);
      const { entries, metadata } = parseHeader(await readAt(file, 8, n), size - 8 - n);
      const tensors = new Map<string, TensorInfo>();
      for (const e of entries) {
        tensors.set(e.name, {
          dtype: e.dtype,
          shape: e.shape,
          offset: 8 + n + e.begin,
          length: e.end - e.begin,
        });
      }
      return new LazySafetensors(path, tensors, metadata, file);
    } catch (e) {
      file.close();
      throw new Error(`${path}: ${(e as Error).message}`);
    }
  }

  /** Reads one tensor's bytes. */
  async read(name: string): Promise<SafetensorsTensor> {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.path}: no tensor ${name}`);
    return {
      dtype: t.dtype,
      shape: [...t.shape],
      data: await readAt(this.file, t.offset, t.length),
    };
  }

  /** Closes the file. */
  close(): void {
    this.file.close();
  }
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) throw new Error(`unexpected end of file at byte ${offset + got}`);
    got += n;
  }
  return out;
}
