/**
 * The run folder `runs/<name>/` and its small files: `run.json` (the full configuration, versions,
 * data digests, backend; one entry per resume) and `samples.txt`. Every file is written
 * atomically (temp file + rename), so a crash never leaves a half-written one.
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };
import { writeJsonAtomic, writeTextAtomic } from "../io/atomic.ts";
import { pathExists, ReadError, readJsonChecked } from "../io/read_file.ts";
import { InputError } from "./input_error.ts";
import { gitCommit } from "./versions.ts";

/** Name of the manifest file in a run folder. */
export const RUN_JSON = "run.json";
/** Name of the samples file in a run folder. */
export const SAMPLES_TXT = "samples.txt";

/** Options of {@link prepareRunDir}. */
export interface PrepareRunDirOptions {
  /** Continue an existing run: the folder must exist and hold `run.json`. Default false. */
  resume?: boolean;
}

/**
 * Checks that `dir` can hold the run, creating nothing: for a new run it must be missing or an
 * empty folder (a run never mixes its files with another's); for a resume (`opts.resume`) it must
 * be a run folder (holding `run.json`). Throws an {@link InputError} that says what to do
 * instead. `finetune` calls it before any slow work, so a bad `--out` fails at once.
 */
export async function checkRunDir(dir: string, opts: PrepareRunDirOptions = {}): Promise<void> {
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new InputError(`${opts.resume ? "--resume" : "--out"} ${dir}: ${(e as Error).message}`);
    }
  }
  if (opts.resume) {
    if (info === null) throw new InputError(`--resume ${dir}: no such folder`);
    if (!info.isDirectory) throw new InputError(`--resume ${dir}: not a folder`);
    try {
      await Deno.stat(`${dir}/${RUN_JSON}`);
    } catch {
      throw new InputError(`--resume ${dir}: not a run folder (no ${RUN_JSON})`);
    }
    return;
  }
  if (info === null) return;
  if (!info.isDirectory) {
    throw new InputError(`${dir} exists and is not a folder; choose another --out`);
  }
  for await (const _ of Deno.readDir(dir)) {
    throw new InputError(
      `${dir} exists and is not empty; choose another --out, or continue that run with ` +
        `--resume ${dir}`,
    );
  }
}

/**
 * Makes the run folder ready: {@link checkRunDir}, then for a new run creates `dir` (and its
 * parents). Throws an {@link InputError} that says what to do instead.
 */
export async function prepareRunDir(dir: string, opts: PrepareRunDirOptions = {}): Promise<void> {
  await checkRunDir(dir, opts);
  if (!opts.resume) await Deno.mkdir(dir, { recursive: true });
}

/** Versions of everything that shaped a run's numbers. */
export interface RunVersions {
  /** loralab's version (deno.json). */
  loralab: string;
  /** Deno's version. */
  deno: string;
  /** V8's version. */
  v8: string;
  /** TypeScript's version. */
  typescript: string;
  /** `git rev-parse HEAD` (with `-dirty` for local changes), or null without git. */
  git: string | null;
}

/** The versions of this process and checkout (git needs `--allow-run=git`, else null). */
export async function collectVersions(): Promise<RunVersions> {
  return {
    loralab: denoJson.version,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    git: await gitCommit(),
  };
}

/** A record of one resume of a run. */
export interface ResumeRecord {
  /** The checkpoint step it continued from. */
  step: number;
  /** When (ISO 8601, UTC). */
  at: string;
  /** Versions of the resuming process. */
  versions: RunVersions;
  /** Backend of the resuming process. */
  backend?: string;
}

/**
 * `run.json`: how a run was made. `config` holds the parsed flags (and anything derived from them
 * that a reader needs); `data` the digests of what it trained and validated on; `extra` any other
 * JSON (base model digest, parameter counts, ...).
 */
export interface RunManifest {
  /** Always `"loralab-run"`. */
  format: "loralab-run";
  /** When the run started (ISO 8601, UTC). */
  created: string;
  /** The command line as given. */
  argv: string[];
  /** Full configuration: the parsed flags with every default filled in. */
  config: Record<string, unknown>;
  /** Hash of the settings a resume must match. */
  configHash: string;
  /** Backend, as the device describes itself (e.g. `"cpu"`, `"webgpu (llvmpipe …)"`). */
  backend: string;
  /** Versions at the start of the run. */
  versions: RunVersions;
  /** Data digests: for each source, its spec, origin and SHA-256s. */
  data: Record<string, unknown>;
  /** Anything else worth recording. */
  extra: Record<string, unknown>;
  /** One entry per `--resume`, in order. */
  resumes: ResumeRecord[];
}

/** Inputs of {@link buildRunManifest}; `versions` and `created` default to now and here. */
export type RunManifestInput =
  & Omit<RunManifest, "format" | "created" | "versions" | "resumes" | "extra">
  & { created?: string; versions?: RunVersions; extra?: Record<string, unknown> };

/** Fills in the format tag, the start time and the versions of a {@link RunManifest}. */
export async function buildRunManifest(input: RunManifestInput): Promise<RunManifest> {
  return {
    format: "loralab-run",
    created: input.created ?? new Date().toISOString(),
    argv: input.argv,
    config: input.config,
    configHash: input.configHash,
    backend: input.backend,
    versions: input.versions ?? await collectVersions(),
    data: input.data,
    extra: input.extra ?? {},
    resumes: [],
  };
}

/** Writes `<dir>/run.json` atomically. */
export function writeRunJson(dir: string, manifest: RunManifest): Promise<void> {
  return writeJsonAtomic(`${dir}/${RUN_JSON}`, manifest);
}

/** Reads `<dir>/run.json`, with an error naming the file when it is missing or invalid. */
export async function readRunJson(dir: string): Promise<RunManifest> {
  const path = `${dir}/${RUN_JSON}`;
  if (!(await pathExists(path))) throw new Error(`${path}: missing`);
  let m: RunManifest;
  try {
    m = await readJsonChecked(path) as RunManifest;
  } catch (e) {
    throw new Error(
      e instanceof ReadError && /JSON/.test(e.message)
        ? `${path}: not valid JSON`
        : (e as Error).message,
    );
  }
  if (m?.format !== "loralab-run") throw new Error(`${path}: not a loralab run manifest`);
  m.resumes ??= [];
  return m;
}

/** Appends a {@link ResumeRecord} to `<dir>/run.json` (atomically) and returns the manifest. */
export async function recordResume(
  dir: string,
  rec: Omit<ResumeRecord, "at" | "versions"> & { at?: string; versions?: RunVersions },
): Promise<RunManifest> {
  const m = await readRunJson(dir);
  m.resumes.push({
    step: rec.step,
    at: rec.at ?? new Date().toISOString(),
    versions: rec.versions ?? await collectVersions(),
    ...(rec.backend !== undefined ? { backend: rec.backend } : {}),
  });
  await writeRunJson(dir, m);
  return m;
}

/** Peak memory of a run's process, recorded in run.json's `memory` (one entry per process). */
export interface MemoryRecord {
  /** Largest resident set size seen after a step (bytes). */
  peakRssBytes: number;
  /** Peak device memory (a GPU's buffers), or null on the CPU. */
  peakDeviceBytes: number | null;
  /** Whether activations were checkpointed. */
  gradCheckpoint: boolean;
}

/** Appends this process's peak memory to `<dir>/run.json` (`memory`, one entry per process). */
export async function recordMemory(dir: string, rec: MemoryRecord): Promise<void> {
  const m = await readRunJson(dir) as RunManifest & { memory?: MemoryRecord[] };
  m.memory = [...(m.memory ?? []), rec];
  await writeRunJson(dir, m);
}

/** One generated text for `samples.txt`. */
export interface Sample {
  /** A heading such as `"base model, step 0"` or `"after 300 steps"`. */
  title: string;
  /** The prompt, if any (printed before the text). */
  prompt?: string;
  /** The generated text. */
  text: string;
}

/** Formats samples as plain text: a `=== title ===` heading, the prompt, the text. */
export function formatSamples(samples: readonly Sample[]): string {
  return samples
    .map((s) =>
      `=== ${s.title} ===\n` + (s.prompt !== undefined ? `[prompt] ${s.prompt}\n` : "") +
      `${s.text.replace(/\s+$/, "")}\n`
    )
    .join("\n");
}

/** Writes `<dir>/samples.txt` atomically (see {@link formatSamples}). */
export function writeSamples(dir: string, samples: readonly Sample[]): Promise<void> {
  return writeTextAtomic(`${dir}/${SAMPLES_TXT}`, formatSamples(samples));
}
