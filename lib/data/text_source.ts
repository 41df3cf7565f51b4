/**
 * Text inputs for `--data <file.txt | file.jsonl | builtin name>`: each becomes a list of
 * documents (the units that `splitByUnit` holds out whole) plus digests for run manifests.
 *
 * @module
 */

import { MAX_TEXT_BYTES, pathExists, ReadError, readFileChecked } from "../io/read_file.ts";
import { sha256Hex } from "./hash.ts";
import {
  exampleJson,
  type InstructExample,
  type JsonlFormat,
  parseInstructRow,
  rowFormat,
} from "./instruct.ts";
import { chapterDocument, loadMobyDick, MOBY_DICK_PACKAGE } from "./moby_dick.ts";
import { errMessage } from "./npm_package.ts";
import { loadSotu, SOTU_PACKAGE } from "./sotu.ts";

/** Names accepted by {@link loadTextSource} for the builtin corpora. */
export const BUILTIN_SOURCES = ["sotu", "moby-dick"] as const;

/** A builtin corpus name. */
export type BuiltinSource = typeof BUILTIN_SOURCES[number];

/** A loaded text input: its documents and where they came from. */
export interface TextSource {
  /** The spec it was loaded from (a builtin name or the path as given). */
  spec: string;
  /** `"builtin"`, `"txt"` or `"jsonl"`. */
  kind: "builtin" | "txt" | "jsonl";
  /** What one document is: `"address"`, `"chapter"`, `"paragraph"` (txt) or `"line"` (jsonl). */
  unit: "address" | "chapter" | "paragraph" | "line";
  /**
   * `"text"` (builtins, `.txt`, `{"text"}` rows), or for instruction data `"prompt-completion"`
   * or `"chat"` (see lib/data/instruct.ts).
   */
  format: JsonlFormat;
  /**
   * The documents, in source order, none empty. For instruction data, each row as canonical
   * JSON (see `exampleJson`), so digests and splits work the same way.
   */
  documents: string[];
  /** Instruction data only: the rows, parallel to `documents`. */
  examples?: InstructExample[];
  /**
   * One short label per document, for reports of which units went to validation: e.g.
   * `"1790 George Washington"`, `"CHAPTER 1. Loomings."`, `"paragraph 3 (line 12)"`, `"line 7"`.
   */
  labels: string[];
  /** Where the data comes from: the npm package and version, or the file path. */
  origin: string;
  /** SHA-256 (hex) of `JSON.stringify(documents)` as UTF-8: exactly the text a run saw. */
  sha256: string;
  /** For files, SHA-256 (hex) of the raw file bytes (what `sha256sum <file>` prints). */
  fileSha256?: string;
}

/**
 * Loads `spec`:
 * - `"sotu"`: the State of the Union addresses, one document per address (see `loadSotu`).
 * - `"moby-dick"`: Moby-Dick, one document per chapter (heading, blank line, body) plus the
 *   epilogue (see `loadMobyDick`).
 * - `*.txt`: UTF-8 text split into documents at blank lines (lines holding only spaces or tabs
 *   count as blank); each document is trimmed; CRLF becomes LF; a leading BOM is dropped.
 * - `*.jsonl`: one JSON object per line; blank lines are skipped; a bad line is an error that
 *   names the file and line number. The first row decides the format of the whole file: rows
 *   with a non-empty string `"text"`, or instruction rows `{"prompt", "completion"}` or
 *   `{"messages": [...]}` (see {@link parseInstructRow}); a row of another format is an error.
 *
 * Builtin names win over files of the same name (write `./sotu` for a file). Throws clear errors
 * for a missing or unreadable file, invalid UTF-8 or JSON, an unknown extension and empty data.
 * Files need `--allow-read` on their path.
 */
export async function loadTextSource(spec: string): Promise<TextSource> {
  if (spec === "sotu") {
    const speeches = await loadSotu();
    return await finish({
      spec,
      kind: "builtin",
      unit: "address",
      format: "text",
      documents: speeches.map((s) => s.text),
      labels: speeches.map((s) => `${s.year} ${s.president}`),
      origin: `npm:${SOTU_PACKAGE.name}@${SOTU_PACKAGE.version}`,
    });
  }
  if (spec === "moby-dick") {
    const chapters = await loadMobyDick();
    return await finish({
      spec,
      kind: "builtin",
      unit: "chapter",
      format: "text",
      documents: chapters.map(chapterDocument),
      labels: chapters.map((c) => c.heading),
      origin: `npm:${MOBY_DICK_PACKAGE.name}@${MOBY_DICK_PACKAGE.version}`,
    });
  }
  const lower = spec.toLowerCase();
  const kind = lower.endsWith(".txt") ? "txt" : lower.endsWith(".jsonl") ? "jsonl" : null;
  if (kind === null) {
    throw new Error(
      `--data ${JSON.stringify(spec)}: expected a .txt file, a .jsonl file or a builtin name ` +
        `(${BUILTIN_SOURCES.join(", ")})`,
    );
  }
  const bytes = await readFile(spec);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new Error(`${spec}: not valid UTF-8 text`);
  }
  text = text.replace(/\r\n?/g, "\n");
  const parsed = kind === "txt" ? { ...parseTxt(text), format: "text" as const } : parseJsonl(
    text,
    spec,
  );
  if (parsed.documents.length === 0) {
    throw new Error(`${spec}: no text (the file is empty or holds only blank lines)`);
  }
  return await finish({
    spec,
    kind,
    unit: kind === "txt" ? "paragraph" : "line",
    ...parsed,
    origin: spec,
  }, bytes);
}

async function readFile(path: string): Promise<Uint8Array> {
  if (!(await pathExists(path))) {
    throw new Error(`data file not found: ${path} (working directory ${safeCwd()})`);
  }
  try {
    return await readFileChecked(path, MAX_TEXT_BYTES);
  } catch (err) {
    if (err instanceof ReadError) throw err;
    throw new Error(`cannot read data file ${path}: ${errMessage(err)}`);
  }
}

function safeCwd(): string {
  try {
    return Deno.cwd();
  } catch {
    return "unknown";
  }
}

/** Documents of a .txt file: runs of non-blank lines, with their first line number. */
function parseTxt(text: string): { documents: string[]; labels: string[] } {
  const documents: string[] = [];
  const labels: string[] = [];
  const lines = text.split("\n");
  let start = -1;
  const flush = (end: number) => {
    if (start < 0) return;
    documents.push(lines.slice(start, end).join("\n").trim());
    labels.push(`paragraph ${documents.length} (line ${start + 1})`);
    start = -1;
  };
  for (let i = 0; i < lines.length; i++) {
    if (/^[ \t]*$/.test(lines[i])) flush(i);
    else if (start < 0) start = i;
  }
  flush(lines.length);
  return { documents, labels };
}

/** Documents of a .jsonl file: the `text` of each non-blank line, or its instruction row. */
function parseJsonl(
  text: string,
  path: string,
): {
  documents: string[];
  labels: string[];
  format: JsonlFormat;
  examples?: InstructExample[];
} {
  const documents: string[] = [];
  const labels: string[] = [];
  const examples: InstructExample[] = [];
  let format: JsonlFormat | null = null;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const where = `${path}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}: invalid JSON (${errMessage(err)})`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new Error(
        `${where}: expected an object like {"text": "..."}, {"prompt": "...", "completion": ` +
          `"..."} or {"messages": [...]}`,
      );
    }
    const row = value as Record<string, unknown>;
    format ??= rowFormat(row);
    if (format !== "text") {
      const ex = parseInstructRow(row, format, where, i + 1);
      examples.push(ex);
      documents.push(exampleJson(ex));
      labels.push(`line ${i + 1}`);
      continue;
    }
    const t = row.text;
    if (typeof t !== "string") {
      throw new Error(`${where}: expected a string field "text", got ${describe(t)}`);
    }
    if (t.trim() === "") throw new Error(`${where}: "text" is empty`);
    documents.push(t);
    labels.push(`line ${i + 1}`);
  }
  format ??= "text";
  return format === "text"
    ? { documents, labels, format }
    : { documents, labels, format, examples };
}

function describe(v: unknown): string {
  return v === undefined ? "no such field" : v === null ? "null" : typeof v;
}

async function finish(
  src: Omit<TextSource, "sha256" | "fileSha256">,
  fileBytes?: Uint8Array,
): Promise<TextSource> {
  const out: TextSource = { ...src, sha256: await sha256Hex(JSON.stringify(src.documents)) };
  if (fileBytes) out.fileSha256 = await sha256Hex(fileBytes);
  return out;
}
