/**
 * `metrics.jsonl`: one JSON object per line, appended as training goes. Each row is written as a
 * whole line in one append and flushed, so a crash loses at most the line being written; a
 * half-written last line is ignored by {@link readMetrics} and removed on resume.
 *
 * On `--resume`, {@link MetricsWriter.resume} keeps the lines up to the checkpoint's step, byte
 * for byte, and drops the rest: the resumed run re-logs those steps, so its file equals an
 * uninterrupted run's apart from timing fields (`time_s`, `tokens_per_s`).
 *
 * @example
 * ```ts
 * import { MetricsWriter, readMetrics } from "./metrics.ts";
 * const dir = await Deno.makeTempDir();
 * const w = await MetricsWriter.create(`${dir}/metrics.jsonl`);
 * await w.append({ step: 1, loss: 3.2, lr: 1e-3, tokens_per_s: 900, time_s: 1.1 });
 * w.close();
 * console.log(await readMetrics(`${dir}/metrics.jsonl`));
 * ```
 *
 * @module
 */

import { writeTextAtomic } from "../io/atomic.ts";
import { pathExists, readTextChecked } from "../io/read_file.ts";

/**
 * One line of `metrics.jsonl`. `step` is the optimizer step the row describes (1-based; a row at
 * step 0 describes the model before training). Non-finite numbers are written as `null` (JSON has
 * no NaN) and read back as NaN. Extra numeric fields (e.g. `grad_norm`) are kept.
 */
export interface MetricsRow {
  /** Optimizer step (0 = before the first update). */
  step: number;
  /** Mean training loss of the step (nats/token). */
  loss?: number;
  /** Validation loss (nats/token), on the rows where validation ran. */
  val_loss?: number;
  /** Learning rate used by the step. */
  lr?: number;
  /** Training throughput of the step. */
  tokens_per_s?: number;
  /** Seconds since the start of the run (of this process, for a resumed run). */
  time_s?: number;
  /** Any other numeric field. */
  [field: string]: number | undefined;
}

/** Options of {@link MetricsWriter}. */
export interface MetricsWriterOptions {
  /** Flush each line to disk (`fdatasync`) before `append` resolves. Default true. */
  sync?: boolean;
}

const encoder = new TextEncoder();

/** Appends {@link MetricsRow}s to a JSON-lines file, one whole line per write. */
export class MetricsWriter {
  readonly #file: Deno.FsFile;
  readonly #sync: boolean;
  #closed = false;

  private constructor(file: Deno.FsFile, readonly path: string, sync: boolean) {
    this.#file = file;
    this.#sync = sync;
  }

  /** Starts a new file at `path`; throws if one already exists (a run never overwrites rows). */
  static async create(path: string, opts: MetricsWriterOptions = {}): Promise<MetricsWriter> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { append: true, createNew: true });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        throw new Error(`${path} already exists: a new run needs a fresh metrics file`);
      }
      throw e;
    }
    return new MetricsWriter(file, path, opts.sync ?? true);
  }

  /**
   * Continues the file at `path` after a checkpoint at `step`: keeps its lines with
   * `step <= checkpointStep` unchanged, drops later ones and a torn last line (rewriting the
   * file atomically), then appends. A missing file starts empty. Log a step's row before saving
   * its checkpoint, so the kept rows cover exactly the checkpointed steps.
   */
  static async resume(
    path: string,
    checkpointStep: number,
    opts: MetricsWriterOptions = {},
  ): Promise<MetricsWriter> {
    const text = await pathExists(path) ? await readTextChecked(path) : "";
    const kept = parseLines(text, path)
      .filter(({ row }) => row.step <= checkpointStep)
      .map(({ line }) => line + "\n");
    await writeTextAtomic(path, kept.join(""));
    const file = await Deno.open(path, { append: true });
    return new MetricsWriter(file, path, opts.sync ?? true);
  }

  /** Appends one row as one line (and flushes it unless `sync: false`). */
  async append(row: MetricsRow): Promise<void> {
    if (this.#closed) throw new Error(`MetricsWriter(${this.path}): append after close`);
    if (!Number.isInteger(row.step) || row.step < 0) {
      throw new Error(`MetricsWriter: bad step ${row.step}`);
    }
    const bytes = encoder.encode(formatRow(row) + "\n");
    let written = 0;
    while (written < bytes.byteLength) written += await this.#file.write(bytes.subarray(written));
    if (this.#sync) await this.#file.syncData();
  }

  /** Closes the file (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

/** One row as compact JSON: `step` first, then the other fields in insertion order. */
export function formatRow(row: MetricsRow): string {
  const out: Record<string, number | null> = { step: row.step };
  for (const [k, v] of Object.entries(row)) {
    if (k === "step" || v === undefined) continue;
    if (typeof v !== "number") throw new Error(`metrics field ${k} is not a number: ${v}`);
    out[k] = Number.isFinite(v) ? v : null;
  }
  return JSON.stringify(out);
}

/**
 * Reads `metrics.jsonl`: every complete line as a row (`null` fields become NaN). A last line
 * without its newline (a write cut short by a crash) is skipped; any other bad line is an error
 * naming the file and line number. A missing file is an error.
 */
export async function readMetrics(path: string): Promise<MetricsRow[]> {
  return parseLines(await readTextChecked(path), path).map(({ row }) => row);
}

function parseLines(text: string, path: string): { line: string; row: MetricsRow }[] {
  const lines = text.split("\n");
  lines.pop(); // "" when the text ends with a newline, else an unfinished (torn) line
  const out: { line: string; row: MetricsRow }[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`${path}:${i + 1}: not a JSON line`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new Error(`${path}:${i + 1}: expected a JSON object`);
    }
    const row: MetricsRow = { step: NaN };
    for (const [k, v] of Object.entries(value)) {
      if (v === null) row[k] = NaN;
      else if (typeof v === "number") row[k] = v;
      else throw new Error(`${path}:${i + 1}: field ${k} is not a number`);
    }
    if (!Number.isInteger(row.step) || row.step < 0) {
      throw new Error(`${path}:${i + 1}: missing or bad "step"`);
    }
    out.push({ line, row });
  });
  return out;
}
