/**
 * Training checkpoints: `<run>/checkpoint/` holds
 * - `trainable.safetensors`: the trainable tensors by name, F32;
 * - `optimizer.safetensors`: the optimizer's buffers as `<param>.<buffer>` (AdamW: `.m`, `.v`;
 *   SGD: `.buf`), F32, shaped like their parameter;
 * - `state.json`: step, optimizer kind and step, batch-sampler state, dropout RNG state, config
 *   hash, the run's arguments, and the size and SHA-256 of both tensor files.
 *
 * The checkpoint is replaced as a whole: the files go to `checkpoint.tmp-<uuid>/`, which is
 * flushed and then swapped in (`checkpoint/` → `checkpoint.old/`, the new folder →
 * `checkpoint/`, `checkpoint.old/` deleted). A crash at any point leaves either the previous or
 * the new checkpoint loadable: {@link loadCheckpoint} takes `checkpoint/`, or `checkpoint.old/`
 * when the crash fell between the two renames (and moves it back).
 *
 * @module
 */

import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.ts";
import { readFileChecked } from "../io/read_file.ts";
import {
  parseSafetensors,
  type SafetensorsTensor,
  serializeSafetensors,
} from "../io/safetensors.ts";
import type { BatchSamplerState } from "../data/batch.ts";
import { sha256Hex } from "../data/hash.ts";
import type { OptimizerState } from "../optim/optimizers.ts";
import { flagField, RESUME_FLAGS, type TrainArgs } from "./args.ts";

/** A tensor copied to the host: row-major F32 values and a shape. */
export interface HostTensor {
  /** Dimensions. */
  shape: number[];
  /** Values, `product(shape)` long. */
  data: Float32Array;
}

/** State of an `Rng` (`Rng.getState()`). */
export interface RngState {
  /** The four xoshiro128** words. */
  s: number[];
  /** The cached second normal draw, or null. */
  spare: number | null;
}

/** Everything a run needs to continue exactly where it stopped. */
export interface CheckpointState {
  /** Optimizer steps completed. */
  step: number;
  /** Trainable tensors by parameter name. */
  trainable: Map<string, HostTensor>;
  /** The optimizer's state (`AdamW.getState()` / `SGD.getState()`). */
  optimizer: OptimizerState;
  /** The training batch sampler's state (`BatchSampler.getState()`). */
  sampler: BatchSamplerState;
  /** The dropout RNG's state (`Rng.getState()`). */
  dropoutRng: RngState;
  /** Hash of the settings that must not change on resume (see {@link configHash}). */
  configHash: string;
  /** The run's arguments (any JSON; normally {@link TrainArgs}). */
  args: unknown;
  /** Any other JSON the loop wants back (e.g. elapsed seconds, best validation loss). */
  extra?: Record<string, unknown>;
}

/** What {@link loadCheckpoint} checks the checkpoint against; every field optional. */
export interface CheckpointExpectation {
  /** The current run's config hash. */
  configHash?: string;
  /** Names and shapes of the current model's trainable tensors. */
  trainable?: Map<string, readonly number[]>;
  /** The current optimizer's kind. */
  optimizerKind?: OptimizerState["kind"];
}

/** Folder name of the current checkpoint inside a run folder. */
export const CHECKPOINT_DIR = "checkpoint";
const OLD_DIR = "checkpoint.old";
const TMP_PREFIX = "checkpoint.tmp-";
const FORMAT = "loralab-checkpoint";
const FORMAT_VERSION = 1;

interface StateJson {
  format: string;
  version: number;
  step: number;
  optimizer: { kind: OptimizerState["kind"]; step: number };
  sampler: BatchSamplerState;
  dropout_rng: RngState;
  config_hash: string;
  args: unknown;
  extra: Record<string, unknown>;
  files: Record<string, { bytes: number; sha256: string }>;
}

/** JSON with object keys sorted at every level (arrays keep their order). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/** SHA-256 (hex) of {@link canonicalJson} of `config`: equal settings give equal hashes. */
export function configHash(config: unknown): Promise<string> {
  return sha256Hex(canonicalJson(config));
}

/**
 * The settings a resumed run must share with the original: every flag but those a resume may
 * change ({@link RESUME_FLAGS}: where the run is written, how it reports, whether it checkpoints
 * activations, which backend it runs on), and the warnings and the record of given flags. Hash
 * it with {@link configHash}, together with digests of the base model and the data.
 */
export function resumeSettings(args: TrainArgs): Record<string, unknown> {
  const skip = new Set<string>([...RESUME_FLAGS.map(flagField), "warnings", "given"]);
  return Object.fromEntries(Object.entries(args).filter(([k]) => !skip.has(k)));
}

/** Saves `state` as `<runDir>/checkpoint/`, replacing the previous checkpoint atomically. */
export async function saveCheckpoint(runDir: string, state: CheckpointState): Promise<void> {
  validateState(state);
  await recover(runDir);
  await removeStaleTemps(runDir);
  const tmp = `${runDir}/${TMP_PREFIX}${crypto.randomUUID()}`;
  await Deno.mkdir(tmp);
  try {
    // Serialized once: the bytes written are the bytes whose digests state.json records.
    const trainableBytes = serializeSafetensors(toSafetensors(state.trainable));
    const optimizerBytes = serializeSafetensors(optimizerTensors(state));
    await writeFileAtomic(`${tmp}/trainable.safetensors`, trainableBytes);
    await writeFileAtomic(`${tmp}/optimizer.safetensors`, optimizerBytes);
    const json: StateJson = {
      format: FORMAT,
      version: FORMAT_VERSION,
      step: state.step,
      optimizer: { kind: state.optimizer.kind, step: state.optimizer.step },
      sampler: state.sampler,
      dropout_rng: state.dropoutRng,
      config_hash: state.configHash,
      args: state.args,
      extra: state.extra ?? {},
      files: {
        "trainable.safetensors": {
          bytes: trainableBytes.byteLength,
          sha256: await sha256Hex(trainableBytes),
        },
        "optimizer.safetensors": {
          bytes: optimizerBytes.byteLength,
          sha256: await sha256Hex(optimizerBytes),
        },
      },
    };
    await writeJsonAtomic(`${tmp}/state.json`, json);
    await syncDir(tmp);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  const cur = `${runDir}/${CHECKPOINT_DIR}`, old = `${runDir}/${OLD_DIR}`;
  const hadCurrent = await exists(cur);
  if (hadCurrent) await Deno.rename(cur, old);
  await Deno.rename(tmp, cur);
  await syncDir(runDir);
  if (hadCurrent) await Deno.remove(old, { recursive: true });
}

/** True when `runDir` holds a checkpoint (`checkpoint/`, or `checkpoint.old/` to recover). */
export async function hasCheckpoint(runDir: string): Promise<boolean> {
  return await exists(`${runDir}/${CHECKPOINT_DIR}`) || await exists(`${runDir}/${OLD_DIR}`);
}

/**
 * Loads `<runDir>/checkpoint/` (recovering `checkpoint.old/` if a save was cut between its two
 * renames) and checks it: files present, sizes and digests as recorded, F32 tensors, optimizer
 * buffers for exactly the trainable tensors with their sizes, and everything in `expect`. Errors
 * name the file and the mismatch.
 */
export async function loadCheckpoint(
  runDir: string,
  expect: CheckpointExpectation = {},
): Promise<CheckpointState> {
  await recover(runDir);
  const dir = `${runDir}/${CHECKPOINT_DIR}`;
  if (!(await exists(dir))) {
    throw new Error(`no checkpoint in ${runDir} (expected ${dir}/state.json)`);
  }
  const where = `checkpoint ${dir}`;
  const stateText = await readOrExplain(`${dir}/state.json`, where).then((b) =>
    new TextDecoder().decode(b)
  );
  let s: StateJson;
  try {
    s = JSON.parse(stateText);
  } catch {
    throw new Error(`${where}: state.json is not valid JSON`);
  }
  if (s?.format !== FORMAT || s.version !== FORMAT_VERSION) {
    throw new Error(
      `${where}: state.json is not a ${FORMAT} v${FORMAT_VERSION} file ` +
        `(format ${JSON.stringify(s?.format)}, version ${JSON.stringify(s?.version)})`,
    );
  }
  for (const key of ["step", "optimizer", "sampler", "dropout_rng", "config_hash", "files"]) {
    if (!(key in s)) throw new Error(`${where}: state.json has no "${key}"`);
  }
  if (expect.configHash !== undefined && s.config_hash !== expect.configHash) {
    throw new Error(
      `${where} was saved with config hash ${s.config_hash.slice(0, 12)}…, this run has ` +
        `${expect.configHash.slice(0, 12)}… (different flags, base model or data): ` +
        "resume with the original flags",
    );
  }
  if (expect.optimizerKind !== undefined && s.optimizer.kind !== expect.optimizerKind) {
    throw new Error(
      `${where}: optimizer state is for ${s.optimizer.kind}, this run uses ${expect.optimizerKind}`,
    );
  }

  const files: Record<string, Map<string, SafetensorsTensor>> = {};
  for (const name of ["trainable.safetensors", "optimizer.safetensors"]) {
    const bytes = await readOrExplain(`${dir}/${name}`, where);
    const rec = s.files[name];
    if (rec === undefined) throw new Error(`${where}: state.json does not list ${name}`);
    if (bytes.byteLength !== rec.bytes || (await sha256Hex(bytes)) !== rec.sha256) {
      throw new Error(`${where}: ${name} does not match the size and SHA-256 in state.json`);
    }
    const parsed = parseSafetensors(bytes).tensors;
    for (const [n, t] of parsed) {
      if (t.dtype !== "F32") {
        throw new Error(`${where}: ${name}: tensor ${n} is ${t.dtype}, not F32`);
      }
    }
    files[name] = parsed;
  }

  const trainable = new Map<string, HostTensor>();
  for (const [name, t] of files["trainable.safetensors"]) {
    trainable.set(name, { shape: t.shape, data: f32(t) });
  }
  if (expect.trainable !== undefined) {
    const want = expect.trainable;
    const missing = [...want.keys()].filter((n) => !trainable.has(n));
    const unexpected = [...trainable.keys()].filter((n) => !want.has(n));
    if (missing.length > 0 || unexpected.length > 0) {
      throw new Error(
        `${where}: trainable tensors differ from the model's (` +
          [
            missing.length ? `missing ${list(missing)}` : "",
            unexpected.length ? `not in the model ${list(unexpected)}` : "",
          ].filter(Boolean).join("; ") + ")",
      );
    }
    for (const [name, shape] of want) {
      const got = trainable.get(name)!.shape;
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
        throw new Error(
          `${where}: ${name} has shape [${got.join(", ")}], the model's is [${shape.join(", ")}]`,
        );
      }
    }
  }

  const buffers: OptimizerState["buffers"] = {};
  for (const [key, t] of files["optimizer.safetensors"]) {
    const dot = key.lastIndexOf(".");
    const param = key.slice(0, dot), buf = key.slice(dot + 1);
    const p = trainable.get(param);
    if (dot <= 0 || p === undefined) {
      throw new Error(`${where}: optimizer buffer ${key} belongs to no trainable tensor`);
    }
    if (t.data.byteLength !== p.data.byteLength) {
      throw new Error(
        `${where}: optimizer buffer ${key} has ${t.data.byteLength / 4} values, ${param} has ` +
          `${p.data.length}`,
      );
    }
    (buffers[param] ??= {})[buf] = f32(t);
  }
  if (s.optimizer.step > 0) {
    const without = [...trainable.keys()].filter((n) => buffers[n] === undefined);
    if (without.length > 0) {
      throw new Error(`${where}: no optimizer state for ${list(without)}`);
    }
  }

  return {
    step: s.step,
    trainable,
    optimizer: { kind: s.optimizer.kind, step: s.optimizer.step, buffers },
    sampler: s.sampler,
    dropoutRng: s.dropout_rng,
    configHash: s.config_hash,
    args: s.args,
    extra: s.extra,
  };
}

function validateState(state: CheckpointState): void {
  if (!Number.isInteger(state.step) || state.step < 0) {
    throw new Error(`saveCheckpoint: bad step ${state.step}`);
  }
  for (const [name, t] of state.trainable) {
    if (!(t.data instanceof Float32Array)) {
      throw new Error(`saveCheckpoint: trainable ${name} is not a Float32Array`);
    }
  }
  for (const [param, bufs] of Object.entries(state.optimizer.buffers)) {
    const p = state.trainable.get(param);
    if (p === undefined) {
      throw new Error(`saveCheckpoint: optimizer state for ${param}, which is not trainable`);
    }
    for (const [b, arr] of Object.entries(bufs)) {
      if (b.includes(".") || !(arr instanceof Float32Array) || arr.length !== p.data.length) {
        throw new Error(`saveCheckpoint: bad optimizer buffer ${param}.${b}`);
      }
    }
  }
}

function toSafetensors(tensors: Map<string, HostTensor>): Map<string, SafetensorsTensor> {
  const out = new Map<string, SafetensorsTensor>();
  for (const [name, t] of tensors) out.set(name, f32Tensor(t.data, t.shape));
  return out;
}

function optimizerTensors(state: CheckpointState): Map<string, SafetensorsTensor> {
  const out = new Map<string, SafetensorsTensor>();
  for (const [param, bufs] of Object.entries(state.optimizer.buffers)) {
    const shape = state.trainable.get(param)!.shape;
    for (const [b, arr] of Object.entries(bufs)) out.set(`${param}.${b}`, f32Tensor(arr, shape));
  }
  return out;
}

function f32Tensor(data: Float32Array, shape: number[]): SafetensorsTensor {
  return {
    dtype: "F32",
    shape: [...shape],
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

function f32(t: SafetensorsTensor): Float32Array {
  const copy = t.data.slice(); // aligned, and independent of the file's buffer
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

/** Moves `checkpoint.old/` back when a save was cut between its renames; drops a stale one. */
async function recover(runDir: string): Promise<void> {
  const cur = `${runDir}/${CHECKPOINT_DIR}`, old = `${runDir}/${OLD_DIR}`;
  if (!(await exists(old))) return;
  if (await exists(cur)) await Deno.remove(old, { recursive: true });
  else await Deno.rename(old, cur);
}

async function removeStaleTemps(runDir: string): Promise<void> {
  for await (const e of Deno.readDir(runDir)) {
    if (e.isDirectory && e.name.startsWith(TMP_PREFIX)) {
      await Deno.remove(`${runDir}/${e.name}`, { recursive: true });
    }
  }
}

async function syncDir(path: string): Promise<void> {
  try {
    const d = await Deno.open(path, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Not every platform can open or flush a directory; the renames are still atomic.
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function readOrExplain(path: string, where: string): Promise<Uint8Array> {
  if (!(await exists(path))) {
    throw new Error(`${where}: missing ${path.slice(path.lastIndexOf("/") + 1)}`);
  }
  return await readFileChecked(path);
}

function list(names: string[]): string {
  return names.length <= 4
    ? names.join(", ")
    : `${names.slice(0, 4).join(", ")} … (${names.length})`;
}
