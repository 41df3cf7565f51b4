/**
 * Tables for notebooks: one value that shows as HTML in a notebook, as Markdown where
 * Markdown is preferred, and as aligned plain text in logs and tests.
 *
 * @module
 */

import { type Displayable, displayable, escapeHtml } from "./display.ts";

/** A table cell: numbers are formatted by {@link formatNumber} unless a column formats them. */
export type Cell = string | number | bigint | boolean | null | undefined;

/** Options of {@link table}. */
export interface TableOptions {
  /** Column headers (default: the keys of the first row when rows are objects). */
  columns?: readonly string[];
  /** A caption shown above the table. */
  caption?: string;
  /** Per-column formatter, by header; overrides the default number formatting. */
  format?: Record<string, (v: Cell) => string>;
  /** Significant digits of non-integer numbers (default 4). */
  digits?: number;
}

/** A displayable table that also keeps its formatted cells. */
export interface Table extends Displayable {
  /** Headers. */
  readonly columns: readonly string[];
  /** Formatted cells, row by row. */
  readonly cells: readonly (readonly string[])[];
  /** Plain-text rendering (aligned columns). */
  toString(): string;
}

/**
 * Formats a number for a table: integers with thousands separators (16,777,216), other
 * numbers with `digits` significant digits (exponent form below 1e-4 or above 1e15),
 * `Infinity` as ∞.
 */
export function formatNumber(x: number, digits = 4): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "∞" : "-∞";
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return x.toLocaleString("en-US");
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e15)) return x.toExponential(digits - 1);
  return Number(x.toPrecision(digits)).toLocaleString("en-US", { maximumFractionDigits: 20 });
}

function formatCell(v: Cell, digits: number): string {
  if (typeof v === "number") return formatNumber(v, digits);
  if (typeof v === "bigint") return v.toLocaleString("en-US");
  return v === null || v === undefined ? "" : String(v);
}

function isNumeric(v: Cell): boolean {
  return typeof v === "number" || typeof v === "bigint";
}

/**
 * A table from rows of objects (keyed by column) or arrays (with `opts.columns`).
 * Numeric columns are right-aligned.
 *
 * @example
 * ```ts
 * table([{ r: 8, params: 65536 }], { caption: "LoRA on a 4096×4096 weight" });
 * ```
 */
export function table(
  rows: readonly (Record<string, Cell> | readonly Cell[])[],
  opts: TableOptions = {},
): Table {
  const first = rows[0];
  const columns = opts.columns ??
    (first && !Array.isArray(first) ? Object.keys(first as Record<string, Cell>) : []);
  if (columns.length === 0) throw new Error("table: no columns (pass opts.columns)");
  const digits = opts.digits ?? 4;
  const raw: Cell[][] = rows.map((r) =>
    Array.isArray(r)
      ? columns.map((_, i) => r[i])
      : columns.map((c) => (r as Record<string, Cell>)[c])
  );
  const cells = raw.map((r) =>
    r.map((v, i) => {
      const f = opts.format?.[columns[i]];
      return f ? f(v) : formatCell(v, digits);
    })
  );
  const right = columns.map((_, i) =>
    raw.length > 0 && raw.every((r) => isNumeric(r[i]) || r[i] == null)
  );

  const width = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const pad = (s: string, i: number) => right[i] ? s.padStart(width[i]) : s.padEnd(width[i]);
  const text = [
    ...(opts.caption ? [opts.caption] : []),
    columns.map(pad).join("  "),
    width.map((w) => "-".repeat(w)).join("  "),
    ...cells.map((r) => r.map(pad).join("  ")),
  ].join("\n");

  const mdEsc = (s: string) => s.replace(/\|/g, "\\|");
  const md = [
    ...(opts.caption ? [`**${mdEsc(opts.caption)}**`, ""] : []),
    `| ${columns.map(mdEsc).join(" | ")} |`,
    `| ${right.map((r) => (r ? "---:" : ":---")).join(" | ")} |`,
    ...cells.map((r) => `| ${r.map(mdEsc).join(" | ")} |`),
  ].join("\n");

  const align = (i: number) => ` style="text-align:${right[i] ? "right" : "left"}"`;
  const htmlSrc = [
    "<table>",
    ...(opts.caption ? [`<caption>${escapeHtml(opts.caption)}</caption>`] : []),
    `<thead><tr>${
      columns.map((c, i) => `<th${align(i)}>${escapeHtml(c)}</th>`).join("")
    }</tr></thead>`,
    "<tbody>",
    ...cells.map((r) =>
      `<tr>${r.map((s, i) => `<td${align(i)}>${escapeHtml(s)}</td>`).join("")}</tr>`
    ),
    "</tbody>",
    "</table>",
  ].join("\n");

  const bundle = { "text/html": htmlSrc, "text/markdown": md, "text/plain": text };
  return Object.assign(displayable(bundle), {
    columns,
    cells,
    toString: () => text,
  });
}

/** Options of {@link matrix}. */
export interface MatrixOptions {
  /** Decimals of every entry (default 2). */
  digits?: number;
  /** A caption shown above the matrix. */
  caption?: string;
}

/**
 * A matrix as a table: rows of `data` (flat, row-major, shape [rows, cols]) with fixed
 * decimals, row and column indices as headers.
 *
 * @example
 * ```ts
 * matrix([1, 2, 3, 4], [2, 2], { caption: "W" });
 * ```
 */
export function matrix(
  data: ArrayLike<number>,
  shape: readonly [number, number] | readonly number[],
  opts: MatrixOptions = {},
): Table {
  const [rows, cols] = shape;
  if (shape.length !== 2 || rows * cols !== data.length) {
    throw new RangeError(`matrix: ${data.length} values do not fill shape [${shape}]`);
  }
  const d = opts.digits ?? 2;
  const fmt = (v: Cell) => {
    const s = (v as number).toFixed(d);
    return /^-0\.?0*$/.test(s) ? s.slice(1) : s; // no "-0.00"
  };
  const columns = ["", ...Array.from({ length: cols }, (_, j) => String(j))];
  const format: Record<string, (v: Cell) => string> = {};
  for (const c of columns.slice(1)) format[c] = fmt;
  const body = Array.from(
    { length: rows },
    (_, i): Cell[] => [i, ...Array.from({ length: cols }, (_, j) => data[i * cols + j])],
  );
  return table(body, { columns, format, caption: opts.caption });
}
