/**
 * Reading files the user named, safely: every input file (data, model folder, adapter, run
 * folder) goes through here.
 *
 * - The real path is resolved (symbolic links followed) and the process's read permission is
 *   checked on it, so a link cannot reach a file the plain path rule would refuse (a model file
 *   linked to /etc/passwd, a model folder linked outside the repository).
 * - Only regular files are read: a FIFO (which would block forever), a device such as /dev/zero
 *   or /dev/urandom (endless), a socket or a directory is refused before it is opened.
 * - Reads are bounded: at most `maxBytes` (and never more than the size `stat` gave: a file that
 *   grows while it is read is an error, not an endless read).
 * - Errors are one line that names the path (and the link's target) and never quote the file's
 *   bytes.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Default bound for JSON files (config.json, tokenizer.json, indexes, run files). */
export const MAX_JSON_BYTES = 256 * 2 ** 20;
/** Default bound for text files (training data): about the longest string V8 can hold. */
export const MAX_TEXT_BYTES = 512 * 2 ** 20;

/** A file that cannot be read as asked: missing, not a regular file, too big, outside the sandbox. */
export class ReadError extends Error {
  /** Creates the error with a one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "ReadError";
  }
}

/** A regular file, checked: its real path (links resolved) and its size in bytes. */
export interface CheckedFile {
  /** The path as given. */
  path: string;
  /** The real path, every symbolic link resolved. */
  real: string;
  /** Size in bytes, from `stat`. */
  size: number;
}

function deniedError(e: unknown): boolean {
  return e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied;
}

function linkNote(path: string, real: string): string {
  return real === path || real === absolute(path) ? "" : ` (a link to ${real})`;
}

function absolute(path: string): string {
  if (path.startsWith("/")) return path;
  try {
    return `${Deno.cwd()}/${path}`.replace(/\/\.\//g, "/");
  } catch {
    return path;
  }
}

/** The message for a path this process may not read. */
function outside(path: string, real: string): ReadError {
  return new ReadError(
    `${path}${linkNote(path, real)} is outside what this command may read ` +
      "(the deno tasks read the repository and the paths their flags name, not what links " +
      "inside those point to): name the file itself in the flag, or run the script with " +
      "deno run --allow-read=<its folder>",
  );
}

/**
 * Resolves `path` and checks it is a regular file this process may read. Throws a
 * {@link ReadError} naming the path for: a missing file, a path (or a link's target) outside the
 * read permission, a directory, a FIFO, a device, a socket, or a file over `maxBytes`.
 */
export async function checkFile(path: string, maxBytes = Infinity): Promise<CheckedFile> {
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ReadError(`${path}: no such file${await danglingNote(path)}`);
    }
    if (deniedError(e)) throw outside(path, path);
    throw new ReadError(`${path}: cannot resolve the path (${(e as Error).message})`);
  }
  if (Deno.permissions.querySync({ name: "read", path: real }).state !== "granted") {
    throw outside(path, real);
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(real);
  } catch (e) {
    throw new ReadError(`${path}: cannot stat (${(e as Error).message})`);
  }
  if (info.isDirectory) throw new ReadError(`${path}${linkNote(path, real)} is a directory`);
  if (!info.isFile) {
    const kind = info.isFifo
      ? "a FIFO (named pipe)"
      : info.isCharDevice
      ? "a character device"
      : info.isBlockDevice
      ? "a block device"
      : info.isSocket
      ? "a socket"
      : "not a regular file";
    throw new ReadError(
      `${path}${linkNote(path, real)} is ${kind}, not a regular file; refusing to read it`,
    );
  }
  if (info.size > maxBytes) {
    throw new ReadError(
      `${path}${linkNote(path, real)} is ${info.size} bytes, over the ${maxBytes}-byte limit ` +
        "for this kind of file",
    );
  }
  return { path, real, size: info.size };
}

async function danglingNote(path: string): Promise<string> {
  try {
    const l = await Deno.lstat(path);
    return l.isSymlink ? " (a symbolic link whose target is missing)" : "";
  } catch {
    return "";
  }
}

/**
 * Opens a checked regular file for reading (see {@link checkFile}); the caller closes it. The
 * file opened is the resolved real path, so the link cannot be swapped between check and open.
 */
export async function openChecked(
  path: string,
  maxBytes = Infinity,
): Promise<{ file: Deno.FsFile; info: CheckedFile }> {
  const info = await checkFile(path, maxBytes);
  try {
    return { file: await Deno.open(info.real, { read: true }), info };
  } catch (e) {
    throw new ReadError(`${path}: cannot open (${(e as Error).message})`);
  }
}

/**
 * Reads a whole regular file (see {@link checkFile}), at most `maxBytes` bytes. A file that is
 * longer when read than `stat` said is an error.
 */
export async function readFileChecked(path: string, maxBytes = Infinity): Promise<Uint8Array> {
  const { file, info } = await openChecked(path, maxBytes);
  try {
    const out = new Uint8Array(info.size);
    let got = 0;
    while (got < out.length) {
      const n = await file.read(out.subarray(got));
      if (n === null) break;
      got += n;
    }
    if (got < out.length) throw new ReadError(`${path}: file shrank while being read`);
    if ((await file.read(new Uint8Array(1))) !== null) {
      throw new ReadError(`${path}: file grew while being read`);
    }
    return out;
  } finally {
    file.close();
  }
}

/** Reads a regular file as UTF-8 text (invalid sequences are an error naming the file). */
export async function readTextChecked(path: string, maxBytes = MAX_TEXT_BYTES): Promise<string> {
  const bytes = await readFileChecked(path, maxBytes);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ReadError(`${path}: not valid UTF-8 text`);
  }
}

/**
 * Reads and parses a JSON file. A parse error names the file and the position, never the file's
 * bytes (V8's message quotes them).
 */
export async function readJsonChecked(path: string, maxBytes = MAX_JSON_BYTES): Promise<unknown> {
  const text = await readTextChecked(path, maxBytes);
  return parseJsonText(text, path);
}

/** `JSON.parse` with an error that names `what` and the position but quotes none of the text. */
export function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const pos = /position (\d+)/.exec((e as Error).message)?.[1];
    const at = pos === undefined ? "" : ` at character ${pos}`;
    throw new ReadError(`${what} is not valid JSON${at}`);
  }
}

/**
 * The SHA-256 of a regular file (see {@link checkFile}) as 64 lowercase hex digits, read in
 * chunks of 16 MiB, so a multi-gigabyte shard is never held whole in memory.
 */
export async function sha256File(path: string): Promise<string> {
  const { file, info } = await openChecked(path);
  try {
    const h = createHash("sha256");
    const buf = new Uint8Array(Math.min(16 * 2 ** 20, Math.max(1, info.size)));
    let total = 0;
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
      total += n;
      if (total > info.size) throw new ReadError(`${path}: file grew while being read`);
    }
    return h.digest("hex");
  } finally {
    file.close();
  }
}

/** Whether `path` names anything (a dangling link counts); permission errors propagate. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    if (deniedError(e)) throw outside(path, path);
    throw e;
  }
}
