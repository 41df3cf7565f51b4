/**
 * The weights of a Hugging Face model folder: `model.safetensors`, or the shards
 * `model-0000N-of-0000M.safetensors` that `model.safetensors.index.json` lists, read lazily;
 * and the folder's weight digest.
 *
 * @module
 */

import { sha256Hex } from "../data/hash.ts";
import { LazySafetensors, type TensorInfo } from "./lazy_safetensors.ts";
import {
  MAX_JSON_BYTES,
  parseJsonText,
  pathExists,
  readFileChecked,
  readJsonChecked,
  sha256File,
} from "./read_file.ts";
import { type SafetensorsTensor, toF32 } from "./safetensors.ts";

/** Every tensor of a model folder, single-file or sharded, read lazily. */
export class HfWeights {
  private constructor(
    readonly dir: string,
    private readonly where: Map<string, LazySafetensors>,
    private readonly files: LazySafetensors[],
  ) {}

  /**
   * Opens `model.safetensors`, or the shards named by `model.safetensors.index.json`
   * (every tensor of its `weight_map` must be in the shard it names).
   */
  static async open(dir: string): Promise<HfWeights> {
    const index = `${dir}/model.safetensors.index.json`;
    if (await pathExists(index)) {
      const j = await readJsonChecked(index) as { weight_map?: unknown } | null;
      const wm = j?.weight_map;
      if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
        throw new Error(`${index}: no "weight_map" object of tensor name → shard file`);
      }
      const byFile = new Map<string, string[]>();
      for (const [name, f] of Object.entries(wm)) {
        if (typeof f !== "string" || f.includes("/") || f.includes("\\") || !f) {
          throw new Error(
            `${index}: weight_map["${name}"] = ${JSON.stringify(f)} is not a file name`,
          );
        }
        byFile.set(f, [...(byFile.get(f) ?? []), name]);
      }
      if (byFile.size === 0) throw new Error(`${index}: weight_map is empty`);
      const files: LazySafetensors[] = [];
      const where = new Map<string, LazySafetensors>();
      try {
        for (const [f, names] of [...byFile].sort(([a], [b]) => a < b ? -1 : 1)) {
          if (!(await pathExists(`${dir}/${f}`))) {
            throw new Error(`${index} names shard ${f}, which is missing from ${dir}`);
          }
          const st = await LazySafetensors.open(`${dir}/${f}`);
          files.push(st);
          for (const n of names) {
            if (!st.tensors.has(n)) {
              throw new Error(`${index} puts ${n} in ${f}, but ${f} has no such tensor`);
            }
            where.set(n, st);
          }
        }
      } catch (e) {
        for (const f of files) f.close();
        throw e;
      }
      return new HfWeights(dir, where, files);
    }
    const single = `${dir}/model.safetensors`;
    if (!(await pathExists(single))) {
      const bin = await pathExists(`${dir}/pytorch_model.bin`);
      throw new Error(
        `${dir} has no model.safetensors or model.safetensors.index.json` +
          (bin ? " (only pytorch_model.bin: convert it to safetensors first)" : ""),
      );
    }
    const st = await LazySafetensors.open(single);
    return new HfWeights(dir, new Map([...st.tensors.keys()].map((n) => [n, st])), [st]);
  }

  /** Tensor names, as stored. */
  names(): string[] {
    return [...this.where.keys()];
  }

  /** dtype and shape of a tensor. */
  info(name: string): TensorInfo {
    const f = this.where.get(name);
    if (!f) throw new Error(`${this.dir}: missing tensor ${name}`);
    return f.tensors.get(name)!;
  }

  /** Whether a tensor of that name is stored. */
  has(name: string): boolean {
    return this.where.has(name);
  }

  /** Reads one tensor's stored bytes. */
  async raw(name: string): Promise<SafetensorsTensor> {
    const f = this.where.get(name);
    if (!f) throw new Error(`${this.dir}: missing tensor ${name}`);
    return await f.read(name);
  }

  /** Reads one tensor as f32. */
  async f32(name: string): Promise<Float32Array> {
    const f = this.where.get(name);
    if (!f) throw new Error(`${this.dir}: missing tensor ${name}`);
    return toF32(name, await f.read(name));
  }

  /** Bytes of every tensor's data, over all files. */
  get dataBytes(): number {
    let n = 0;
    for (const f of this.files) for (const t of f.tensors.values()) n += t.length;
    return n;
  }

  /** The `__metadata__` of the first file. */
  get metadata(): Record<string, string> {
    return this.files[0].metadata;
  }

  /** Closes every file. */
  close(): void {
    for (const f of this.files) f.close();
  }
}

/**
 * SHA-256 of a folder's weights: of `model.safetensors` when there is one (so folders written by
 * saveModel keep their digest), else of the index file and each shard's digest in order. Files
 * are hashed in chunks, never held whole in memory.
 */
export async function hashModelWeights(dir: string): Promise<string> {
  if (await pathExists(`${dir}/model.safetensors`)) {
    return await sha256File(`${dir}/model.safetensors`);
  }
  const indexPath = `${dir}/model.safetensors.index.json`;
  const index = new TextDecoder().decode(await readFileChecked(indexPath, MAX_JSON_BYTES));
  const wm = (parseJsonText(index, indexPath) as { weight_map?: Record<string, string> } | null)
    ?.weight_map ?? {};
  const shards = [...new Set(Object.values(wm))].sort();
  let all = await sha256Hex(index);
  for (const s of shards) all += await sha256File(`${dir}/${s}`);
  return sha256Hex(all);
}
