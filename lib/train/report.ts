/**
 * `report.html`: a run's charts and tables in one page that works offline.
 *
 * Charts (train and validation loss, learning rate, tokens/s, all against the step) are drawn by
 * plotly.js from the npm package `plotly.js-dist-min` (pinned in deno.json). Its `plotly.min.js`
 * (about 4.8 MB) is copied beside the report and loaded with a relative `<script src>`: inlining
 * it would make every report.html a 4.8 MB file that editors and `git diff` choke on, while the
 * copy keeps the report a few kB of readable HTML and costs the same bytes on disk. Tables are
 * plain HTML, so they show even without the script; the metrics are embedded as JSON.
 *
 * @module
 */

import { writeFileAtomic, writeTextAtomic } from "../io/atomic.ts";
import { type DataPackage, dataPackageDir } from "../data/npm_package.ts";
import type { MetricsRow } from "./metrics.ts";

/** The plotly.js package the report loads; must match deno.json's imports. */
export const PLOTLY_PACKAGE: DataPackage = { name: "plotly.js-dist-min", version: "4.1.2" };
/** File name of plotly.js beside the report. */
export const PLOTLY_FILE = "plotly.min.js";
/** File name of the report in a run folder. */
export const REPORT_FILE = "report.html";

/** A table cell. Numbers are printed with up to 4 significant decimals (integers in full). */
export type Cell = string | number | boolean | null;

/** A titled table. */
export interface ReportTable {
  /** Heading above the table. */
  title: string;
  /** Column headings. */
  columns: string[];
  /** Rows, each as long as `columns`. */
  rows: Cell[][];
  /** A sentence under the table (e.g. how a number was measured). */
  note?: string;
}

/** A text generated before and after training from the same prompt. */
export interface SamplePair {
  /** The prompt. */
  prompt: string;
  /** The base model's continuation. */
  before: string;
  /** The fine-tuned model's continuation. */
  after: string;
}

/** Parameter and memory accounting of a run (see {@link parameterTable}). */
export interface ParameterCounts {
  /** Parameters updated by the optimizer. */
  trainable: number;
  /** Parameters held fixed. */
  frozen: number;
  /** Bytes the frozen base weights would take as f32. */
  baseBytesF32: number;
  /** Bytes the frozen base weights take as stored (e.g. NF4 codes + scales). */
  baseBytesStored: number;
  /** Name of the stored format, e.g. `"nf4"` or `"f32"`. */
  storedFormat: string;
  /** Bytes of optimizer state, if known. */
  optimizerBytes?: number;
  /** Peak resident set size of the training process, if measured. */
  peakRssBytes?: number;
  /** Peak device (GPU) memory, if measured. */
  peakDeviceBytes?: number;
  /** Whether activations were checkpointed (recomputed in the backward pass). */
  gradCheckpoint?: boolean;
}

/** What {@link writeReport} renders; everything but `title` and `metrics` is optional. */
export interface ReportData {
  /** Page title, e.g. `"qlora-2026-11-28T20-54-07Z"`. */
  title: string;
  /** One-line description under the title. */
  subtitle?: string;
  /** Rows of `metrics.jsonl`, in step order. */
  metrics: MetricsRow[];
  /** Before/after rows: metric name, value before training, value after. */
  beforeAfter?: { metric: string; before: Cell; after: Cell }[];
  /** Before/after text samples. */
  samples?: SamplePair[];
  /** Configuration summary as name → value. */
  config?: Record<string, Cell>;
  /** Parameter counts (rendered by {@link parameterTable}). */
  params?: ParameterCounts;
  /** Any further tables, rendered in order after the built-in ones. */
  tables?: ReportTable[];
}

/**
 * Writes `<runDir>/report.html` (atomically) and copies `plotly.min.js` beside it (once; it is
 * refreshed when its size differs from the package's). Needs read access to the repository's
 * `node_modules/` (see `dataPackageDir`).
 */
export async function writeReport(runDir: string, data: ReportData): Promise<void> {
  await copyPlotly(runDir);
  await writeTextAtomic(`${runDir}/${REPORT_FILE}`, renderReport(data));
}

/** Copies the pinned `plotly.min.js` into `dir` (atomically) unless an equal-sized copy is there. */
export async function copyPlotly(dir: string): Promise<void> {
  const pkg = await dataPackageDir(PLOTLY_PACKAGE);
  const src = new URL(PLOTLY_FILE, pkg);
  const dst = `${dir}/${PLOTLY_FILE}`;
  const [srcInfo, dstInfo] = await Promise.all([
    Deno.stat(src),
    Deno.stat(dst).catch(() => null),
  ]);
  if (dstInfo?.isFile && dstInfo.size === srcInfo.size) return;
  await writeFileAtomic(dst, await Deno.readFile(src));
}

/** A table of trainable/frozen parameters and base-weight bytes (f32 vs stored). */
export function parameterTable(p: ParameterCounts): ReportTable {
  const total = p.trainable + p.frozen;
  const rows: Cell[][] = [
    ["trainable parameters", p.trainable, pct(p.trainable, total)],
    ["frozen parameters", p.frozen, pct(p.frozen, total)],
    ["base weights as f32", fmtBytes(p.baseBytesF32), ""],
    [
      `base weights as stored (${p.storedFormat})`,
      fmtBytes(p.baseBytesStored),
      p.baseBytesF32 > 0 ? `${(p.baseBytesF32 / p.baseBytesStored).toFixed(2)}× smaller` : "",
    ],
  ];
  if (p.optimizerBytes !== undefined) {
    rows.push(["optimizer state", fmtBytes(p.optimizerBytes), ""]);
  }
  const ck = p.gradCheckpoint ? "activations checkpointed" : "";
  if (p.peakRssBytes !== undefined) {
    rows.push(["peak process memory (RSS)", fmtBytes(p.peakRssBytes), ck]);
  }
  if (p.peakDeviceBytes !== undefined) {
    rows.push(["peak device memory", fmtBytes(p.peakDeviceBytes), ck]);
  }
  return { title: "Parameters and memory", columns: ["", "count / bytes", "share"], rows };
}

/** The report's HTML (what {@link writeReport} writes). */
export function renderReport(data: ReportData): string {
  const tables: ReportTable[] = [];
  if (data.beforeAfter?.length) {
    tables.push({
      title: "Before and after",
      columns: ["metric", "before", "after"],
      rows: data.beforeAfter.map((r) => [r.metric, r.before, r.after]),
    });
  }
  if (data.params) tables.push(parameterTable(data.params));
  if (data.config) {
    tables.push({
      title: "Configuration",
      columns: ["setting", "value"],
      rows: Object.entries(data.config).map(([k, v]) => [k, v]),
    });
  }
  tables.push(...(data.tables ?? []));

  const rows = data.metrics.map((r) => {
    const o: Record<string, number | null> = {};
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === "number") o[k] = Number.isFinite(v) ? v : null;
    }
    return o;
  });
  const samples = (data.samples ?? []).map((s) =>
    `<div class="sample"><div class="prompt">${esc(s.prompt)}</div>` +
    `<div class="pair"><div><h4>before</h4><pre>${esc(s.before)}</pre></div>` +
    `<div><h4>after</h4><pre>${esc(s.after)}</pre></div></div></div>`
  ).join("\n");

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(data.title)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.sub { color: #555; margin-top: 0; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.chart { height: 320px; border: 1px solid #ddd; }
.chart.wide { grid-column: 1 / -1; height: 380px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; } .note { color: #555; font-size: 13px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
pre { white-space: pre-wrap; background: #f8f8f8; padding: 8px; margin: 0; }
.prompt { font-weight: 600; margin-top: 12px; } h4 { margin: 4px 0; }
#noplot { color: #a00; }
</style>
</head>
<body>
<h1>${esc(data.title)}</h1>
${data.subtitle ? `<p class="sub">${esc(data.subtitle)}</p>` : ""}
<p id="noplot" hidden>The charts need ${PLOTLY_FILE} in the folder of this report.</p>
<div class="charts">
<div class="chart wide" id="chart-loss"></div>
<div class="chart" id="chart-lr"></div>
<div class="chart" id="chart-tps"></div>
</div>
${tables.map(renderTable).join("\n")}
${samples ? `<h2>Samples</h2>\n${samples}` : ""}
<script type="application/json" id="metrics">${jsonForScript(rows)}</script>
<script src="${PLOTLY_FILE}"></script>
<script>
(function () {
  var rows = JSON.parse(document.getElementById("metrics").textContent);
  if (typeof Plotly === "undefined") {
    document.getElementById("noplot").hidden = false;
    return;
  }
  function series(key) {
    var x = [], y = [];
    rows.forEach(function (r) {
      if (typeof r[key] === "number") { x.push(r.step); y.push(r[key]); }
    });
    return { x: x, y: y };
  }
  function plot(id, title, ytitle, traces) {
    var layout = {
      title: { text: title, x: 0.01, xanchor: "left" }, margin: { l: 60, r: 20, t: 40, b: 45 },
      xaxis: { title: { text: "step" } }, yaxis: { title: { text: ytitle } },
      legend: { orientation: "h", y: -0.25 }
    };
    Plotly.newPlot(id, traces, layout, { displaylogo: false, responsive: true });
  }
  var tr = series("loss"), va = series("val_loss");
  plot("chart-loss", "Loss", "nats/token", [
    { name: "train", x: tr.x, y: tr.y, mode: "lines", line: { width: 1.5 } },
    { name: "validation", x: va.x, y: va.y, mode: "lines+markers" }
  ]);
  var lr = series("lr");
  plot("chart-lr", "Learning rate", "lr", [{ name: "lr", x: lr.x, y: lr.y, mode: "lines" }]);
  var tps = series("tokens_per_s");
  plot("chart-tps", "Throughput", "tokens/s",
    [{ name: "tokens/s", x: tps.x, y: tps.y, mode: "lines" }]);
})();
</script>
</body>
</html>
`;
}

function renderTable(t: ReportTable): string {
  const head = t.columns.map((c) => `<th>${esc(c)}</th>`).join("");
  const body = t.rows.map((r) =>
    "<tr>" +
    r.map((c) =>
      typeof c === "number" ? `<td class="num">${fmtCell(c)}</td>` : `<td>${fmtCell(c)}</td>`
    )
      .join("") +
    "</tr>"
  ).join("\n");
  return `<h2>${esc(t.title)}</h2>\n<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n` +
    `</tbody></table>${t.note ? `\n<p class="note">${esc(t.note)}</p>` : ""}`;
}

function fmtCell(c: Cell): string {
  if (c === null) return "—";
  if (typeof c === "number") {
    if (Number.isInteger(c)) return c.toLocaleString("en-US");
    if (!Number.isFinite(c)) return String(c);
    return Math.abs(c) >= 1e-3 && Math.abs(c) < 1e6
      ? String(Number(c.toFixed(4)))
      : c.toExponential(3);
  }
  return esc(String(c));
}

function pct(n: number, total: number): string {
  if (total === 0) return "";
  const p = (100 * n) / total;
  return `${p < 0.1 && p > 0 ? p.toFixed(3) : p.toFixed(2)}%`;
}

/** `1536` → `1.5 KiB`. */
export function fmtBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)} ${units[i]}`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that is safe inside a `<script>` element (no `</script>` or `<!--`). */
function jsonForScript(v: unknown): string {
  return JSON.stringify(v).replace(/</g, "\\u003c").replace(
    /\u2028|\u2029/g,
    (c) => c === "\u2028" ? "\\u2028" : "\\u2029",
  );
}
