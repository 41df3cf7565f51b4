/**
 * Plotly figures for Deno's Jupyter kernel.
 *
 * A {@link Figure} displays as one MIME bundle with three views of the same figure:
 * - `application/vnd.plotly.v1+json` (`{ data, layout }`): interactive where the front end
 *   renders plotly natively (JupyterLab and Notebook 7 with plotly's extension, VS Code);
 * - `text/html`: the static SVG inside a `<div>`, plus a script that replaces it with the
 *   interactive plot when plotly.js is loaded in the page (`window.Plotly`, e.g. after
 *   {@link plotlyLibrary}); where scripts do not run, the SVG stays;
 * - `image/svg+xml`: the static SVG alone (GitHub, nbconvert, untrusted notebooks);
 * plus a one-line `text/plain` summary.
 *
 * @example
 * ```ts
 * import { heatmap } from "./mod.ts";
 * heatmap([[1, 2], [3, 4]], { title: "a 2×2 matrix", annotate: 0 }); // last expression of a cell
 * ```
 *
 * @module
 */

import { DISPLAY_SYMBOL, type Displayable, escapeHtml, type MediaBundle } from "./display.ts";
import {
  BLUE_WHITE_RED,
  type ColorScale,
  COLORWAY,
  type FigureSpec,
  type Layout,
  type LineShape,
  type Title,
  titleText,
  type Trace,
  VIRIDIS,
} from "./figure.ts";
import { axisDomain, renderSvg, xyFrame, xyRanges } from "./svg.ts";

/** The MIME type of plotly's JSON figures. */
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

// A short deterministic hash (FNV-1a), so that re-running a notebook gives the same element ids.
function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(36);
}
let counter = 0;

/**
 * Where a figure's HTML looks for plotly.js when the page has none, relative to the page:
 * the npm package in the repository's node_modules (for pages in `notebooks/`, e.g. an
 * nbconvert export), then `plotly.min.js` beside the page.
 */
export const PLOTLY_RELATIVE_URLS: readonly string[] = [
  "../node_modules/plotly.js-dist-min/plotly.min.js",
  "plotly.min.js",
];

// One loader per page (window.__loralabPlotly): tries each URL with a <script> tag (works on
// file:// pages, unlike fetch), with AMD's `define` hidden meanwhile (require.js, as Jupyter and
// nbconvert pages load it, would otherwise take plotly's UMD module and never set
// window.Plotly), then draws every figure that waited.
const PLOTLY_LOADER = `  function load(cb) {\n` +
  `    var w = window, st = w.__loralabPlotly = w.__loralabPlotly || { queue: [], started: false };\n` +
  `    st.queue.push(cb);\n` +
  `    if (st.started) return;\n` +
  `    st.started = true;\n` +
  `    var urls = ${JSON.stringify(PLOTLY_RELATIVE_URLS)};\n` +
  `    (function next(i) {\n` +
  `      if (w.Plotly) { while (st.queue.length) st.queue.shift()(); return; }\n` +
  `      if (i >= urls.length) return;\n` +
  `      var s = document.createElement("script"), d = w.define;\n` +
  `      w.define = undefined;\n` +
  `      s.onload = function () { w.define = d; next(i + 1); };\n` +
  `      s.onerror = function () { w.define = d; s.parentNode.removeChild(s); next(i + 1); };\n` +
  `      s.src = urls[i];\n` +
  `      document.head.appendChild(s);\n` +
  `    })(0);\n` +
  `  }\n`;

/** A plotly figure that Deno's Jupyter kernel displays (see the module documentation). */
export class Figure implements Displayable {
  /** Traces. */
  readonly data: readonly Trace[];
  /** Layout (titles are stored in plotly's `{ text }` form). */
  readonly layout: Layout;

  /** A figure from plotly's `data` and `layout`. */
  constructor(data: readonly Trace[], layout: Layout = {}) {
    this.data = data;
    this.layout = styleLayout(data, normalizeLayout(layout));
  }

  /** The figure as plotly JSON: `{ data, layout }`. */
  toJSON(): FigureSpec {
    return { data: this.data, layout: this.layout };
  }

  /** The static SVG picture. */
  toSvg(): string {
    return renderSvg(this);
  }

  /**
   * The HTML view: the static SVG, replaced by the interactive plot once plotly.js is in the
   * page. When `window.Plotly` is missing, the script loads plotly.js once per page from npm's
   * package, relative to the page: {@link PLOTLY_RELATIVE_URLS} (the repository's
   * `node_modules/`, seen from `notebooks/`, then a `plotly.min.js` beside the page, as a run's
   * report.html has it). Never from a CDN; where nothing loads, the SVG stays.
   */
  toHtml(): string {
    const json = JSON.stringify(this.toJSON());
    const id = `loralab-fig-${hash(json)}-${++counter}`;
    const safe = json.replace(/</g, "\\u003c");
    return `<div id="${id}" class="loralab-figure">${this.toSvg()}</div>\n` +
      `<script type="text/javascript">(function () {\n` +
      `  var el = document.getElementById("${id}"), fig = ${safe};\n` +
      `  function draw() {\n` +
      `    if (!el || !window.Plotly || !window.Plotly.newPlot) return;\n` +
      `    el.innerHTML = "";\n` +
      `    window.Plotly.newPlot(el, fig.data, fig.layout, { displaylogo: false });\n` +
      `  }\n` +
      `  if (window.Plotly) return draw();\n` +
      PLOTLY_LOADER +
      `  load(draw);\n` +
      `})();</script>`;
  }

  /** A one-line description: trace types and the title. */
  toString(): string {
    const kinds = this.data.map((t) =>
      t.type === "heatmap" ? `heatmap ${t.z?.length ?? 0}×${t.z?.[0]?.length ?? 0}` : t.type
    );
    const title = titleText(this.layout.title);
    return `Figure(${kinds.join(", ")})${title ? `: ${title}` : ""}`;
  }

  /** The MIME bundle (see the module documentation). */
  [DISPLAY_SYMBOL](): MediaBundle {
    return {
      [PLOTLY_MIME]: this.toJSON(),
      "text/html": autoLibrary() + this.toHtml(),
      "image/svg+xml": this.toSvg(),
      "text/plain": this.toString(),
    };
  }
}

function normalizeLayout(layout: Layout): Layout {
  const t = (x: Title): Title => (typeof x === "string" ? { text: x } : x);
  const out: Layout = { width: 640, height: 400, ...layout };
  if (layout.title !== undefined) out.title = t(layout.title);
  for (const k of ["xaxis", "yaxis"] as const) {
    const ax = layout[k];
    if (ax) out[k] = { ...ax, ...(ax.title !== undefined ? { title: t(ax.title) } : {}) };
  }
  return out;
}

/**
 * The static SVG's look, made explicit in the plotly layout so that plotly.js (whose own
 * defaults differ: other colours, white background) draws the figure as the SVG shows it:
 * colour cycle, background, grid, font, margins, legend placement, slanted category labels,
 * and the same axis ranges and log ticks (one label per power of ten). Keys the caller set win.
 */
function styleLayout(data: readonly Trace[], layout: Layout): Layout {
  const font = { family: "Open Sans, Arial, sans-serif", size: 12, color: "#2a3f5f" };
  const out: Layout = {
    colorway: [...COLORWAY],
    font,
    paper_bgcolor: "#fff",
    plot_bgcolor: "#e5ecf6",
    ...layout,
  };
  const grid = { gridcolor: "#fff", zerolinecolor: "#fff", linecolor: "#fff" };
  out.xaxis = { ...grid, ...(out.xaxis ?? {}) };
  out.yaxis = { ...grid, ...(out.yaxis ?? {}) };
  if (data.length === 0 || data[0].type === "heatmap") return out;
  const spec = { data, layout: out };
  const f = xyFrame(spec), rg = xyRanges(spec);
  const W = out.width ?? 640, H = out.height ?? 400;
  out.showlegend = out.showlegend ?? f.legend !== "none";
  out.margin = { l: f.L, r: W - f.R, t: f.T, b: H - f.B, pad: 0, ...(out.margin ?? {}) };
  if (f.legend === "below" && out.legend === undefined) {
    out.legend = {
      orientation: "h",
      x: 0,
      xanchor: "left",
      y: -(50 + f.slantExtra) / (f.B - f.T),
      yanchor: "top",
    };
  } else if (f.legend === "right" && out.legend === undefined) {
    out.legend = { x: 1.01, xanchor: "left", y: 1, yanchor: "top" };
  }
  if (out.barmode === "stack" && out.legend && typeof out.legend === "object") {
    out.legend = { traceorder: "normal", ...out.legend }; // as listed (plotly reverses stacks)
  }
  if (f.slant && out.xaxis.tickangle === undefined) out.xaxis = { ...out.xaxis, tickangle: -35 };
  const y = rg.y;
  if (out.yaxis.range === undefined && Number.isFinite(y.lo) && Number.isFinite(y.hi)) {
    const d = axisDomain(y.lo, y.hi, y.log);
    out.yaxis = {
      ...out.yaxis,
      range: [d.lo, d.hi],
      ...(y.log ? { tickvals: d.ticks, ticktext: d.ticks.map(logLabel) } : {}),
    };
  }
  if (rg.x && out.xaxis.range === undefined && Number.isFinite(rg.x.lo)) {
    const d = axisDomain(rg.x.lo, rg.x.hi, false);
    out.xaxis = { ...out.xaxis, range: [d.lo, d.hi] };
  }
  return out;
}

/** A log-axis label: 1, 10, 100, 1000, 10K, 1M, 0.01, 1e-5 (as the static SVG prints them). */
function logLabel(v: number): string {
  if (v >= 1e4) {
    return new Intl.NumberFormat("en-US", { notation: "compact", maximumSignificantDigits: 3 })
      .format(v);
  }
  return v < 1e-3 ? v.toExponential(0) : String(Number(v.toPrecision(4)));
}

/** A dashed horizontal reference line across the plot at `y`, labelled at its right end. */
export function baselineShape(y: number, label?: string, color = "#444"): LineShape {
  return {
    type: "line",
    xref: "paper",
    yref: "y",
    x0: 0,
    x1: 1,
    y0: y,
    y1: y,
    line: { color, width: 1.5, dash: "dash" },
    ...(label
      ? {
        label: {
          text: label,
          textposition: "end",
          xanchor: "right",
          yanchor: "bottom",
          font: { size: 11, color },
        },
      }
      : {}),
  };
}

/**
 * A y range that zooms in on `values` (and the baseline, when given), with room above for bar
 * labels: for bars whose differences are small next to their height, where bars from 0 would all
 * look the same.
 */
export function zoomRange(values: readonly number[], baseline?: number): [number, number] {
  const v = [...values, ...(baseline === undefined ? [] : [baseline])].filter(Number.isFinite);
  const lo = Math.min(...v), hi = Math.max(...v);
  const pad = (hi - lo) * 0.25 || Math.abs(hi) * 0.05 || 1;
  return [Number((lo - pad).toPrecision(6)), Number((hi + 1.5 * pad).toPrecision(6))];
}

/** Common options of the figure helpers. */
export interface PlotOptions {
  /** Figure title. */
  title?: string;
  /** x axis title. */
  xTitle?: string;
  /** y axis title. */
  yTitle?: string;
  /** Width in pixels. */
  width?: number;
  /** Height in pixels. */
  height?: number;
}

function baseLayout(o: PlotOptions): Layout {
  return {
    ...(o.title ? { title: o.title } : {}),
    ...(o.width ? { width: o.width } : {}),
    ...(o.height ? { height: o.height } : {}),
    xaxis: o.xTitle ? { title: o.xTitle } : {},
    yaxis: o.yTitle ? { title: o.yTitle } : {},
  };
}

/** Options of {@link heatmap}. */
export interface HeatmapOptions extends PlotOptions {
  /** Column labels (default 0..cols-1). */
  x?: readonly (string | number)[];
  /** Row labels (default 0..rows-1). */
  y?: readonly (string | number)[];
  /**
   * `"diverging"`: blue–white–red centred on 0 (for signed values); `"sequential"`: Viridis;
   * or an explicit scale. Default: diverging when values of both signs occur.
   */
  colors?: "diverging" | "sequential" | ColorScale;
  /** Print each value in its cell with this many decimals. */
  annotate?: number;
  /** Symmetric colour range ±limit (diverging) or [zmin, zmax]. */
  range?: number | readonly [number, number];
  /** The colour bar's title: the unit of the values (e.g. "bits"). */
  unit?: string;
}

/**
 * A matrix heatmap, row 0 at the top (as the matrix is written).
 *
 * @param z rows of values, `z[i][j]`, or a flat row-major array with `shape` [rows, cols]
 * @param opts labels, colours, annotation
 */
export function heatmap(
  z: readonly (readonly number[])[] | { data: ArrayLike<number>; shape: readonly number[] },
  opts: HeatmapOptions = {},
): Figure {
  const rows = "shape" in z ? toRows(z.data, z.shape) : z.map((r) => [...r]);
  const flat = rows.flat();
  const lo = Math.min(...flat), hi = Math.max(...flat);
  const diverging = opts.colors === "diverging" ||
    (opts.colors === undefined && lo < 0 && hi > 0);
  const scale = Array.isArray(opts.colors)
    ? opts.colors as ColorScale
    : diverging
    ? BLUE_WHITE_RED
    : VIRIDIS;
  let zmin = lo, zmax = hi;
  if (typeof opts.range === "number") [zmin, zmax] = [-opts.range, opts.range];
  else if (opts.range) [zmin, zmax] = opts.range;
  else if (diverging) {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    [zmin, zmax] = [-m, m];
  }
  const trace: Trace = {
    type: "heatmap",
    z: rows,
    x: opts.x ? [...opts.x] : rows[0]?.map((_, j) => j),
    y: opts.y ? [...opts.y] : rows.map((_, i) => i),
    colorscale: scale,
    zmin,
    zmax,
    ...(opts.annotate !== undefined ? { texttemplate: `%{z:.${opts.annotate}f}` } : {}),
    ...(opts.unit ? { colorbar: { title: { text: opts.unit } } } : {}),
  };
  const layout = baseLayout({ width: 460, height: 400, ...opts });
  layout.xaxis = { ...layout.xaxis, type: "category" };
  layout.yaxis = { ...layout.yaxis, type: "category", autorange: "reversed" };
  return new Figure([trace], layout);
}

/** Splits a flat row-major array of shape [rows, cols] into rows. */
export function toRows(data: ArrayLike<number>, shape: readonly number[]): number[][] {
  if (shape.length !== 2 || shape[0] * shape[1] !== data.length) {
    throw new RangeError(`toRows: ${data.length} values do not fill shape [${shape}]`);
  }
  return Array.from(
    { length: shape[0] },
    (_, i) => Array.from({ length: shape[1] }, (_, j) => data[i * shape[1] + j]),
  );
}

/** One named series of {@link bar}. */
export interface Series {
  /** Legend name. */
  name: string;
  /** One value per category. */
  values: readonly number[];
  /** Colour (default: plotly's colour cycle). */
  color?: string;
  /** Labels printed above the bars. */
  labels?: readonly string[];
}

/** Options of {@link bar}. */
export interface BarOptions extends PlotOptions {
  /** Logarithmic value axis. */
  logY?: boolean;
  /** A reference value drawn as a dashed line (e.g. the base model's loss). */
  baseline?: number;
  /** The baseline's label, at its right end. */
  baselineLabel?: string;
  /**
   * Zoom the value axis in on the values (and baseline) instead of starting at 0: for small
   * differences. Default: true when a baseline is given.
   */
  zoom?: boolean;
  /** Stack the series in each category (parts of a whole) instead of side by side. */
  stack?: boolean;
}

/** A grouped bar chart: one bar per category and series. */
export function bar(
  categories: readonly (string | number)[],
  series: readonly Series[],
  opts: BarOptions = {},
): Figure {
  const data: Trace[] = series.map((s) => ({
    type: "bar",
    name: s.name,
    x: categories.map(String),
    y: [...s.values],
    ...(s.color ? { marker: { color: s.color } } : {}),
    ...(s.labels
      ? { text: [...s.labels], texttemplate: "%{text}", textposition: "outside", cliponaxis: false }
      : {}),
  }));
  const layout = baseLayout(opts);
  layout.barmode = opts.stack ? "stack" : "group";
  layout.xaxis = { ...layout.xaxis, type: "category" };
  if (opts.logY) layout.yaxis = { ...layout.yaxis, type: "log" };
  else if (opts.zoom ?? opts.baseline !== undefined) {
    layout.yaxis = {
      ...layout.yaxis,
      range: zoomRange(series.flatMap((s) => s.values), opts.baseline),
    };
  }
  if (opts.baseline !== undefined) {
    layout.shapes = [baselineShape(opts.baseline, opts.baselineLabel)];
  }
  return new Figure(data, layout);
}

/** Options of {@link histogram}. */
export interface HistogramOptions extends PlotOptions {
  /** Number of bins (default 60). */
  bins?: number;
  /** Bin range (default: the data's min and max). */
  range?: readonly [number, number];
  /** Scale counts to a density (area 1). */
  density?: boolean;
  /** Vertical lines at these x positions (e.g. code values), dashed. */
  markers?: readonly number[];
  /** Colour of the bars. */
  color?: string;
  /** Legend name of the bars. */
  name?: string;
}

/**
 * A histogram, binned here (so that the interactive and the static views agree) and drawn
 * as bars of the bin width.
 */
export function histogram(values: ArrayLike<number>, opts: HistogramOptions = {}): Figure {
  const nb = opts.bins ?? 60;
  let lo = opts.range?.[0] ?? Infinity, hi = opts.range?.[1] ?? -Infinity;
  if (!opts.range) {
    for (let i = 0; i < values.length; i++) {
      lo = Math.min(lo, values[i]);
      hi = Math.max(hi, values[i]);
    }
  }
  const w = (hi - lo) / nb || 1;
  const counts = new Array(nb).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo || v > hi) continue;
    counts[Math.min(nb - 1, Math.floor((v - lo) / w))]++;
  }
  const norm = opts.density ? 1 / (values.length * w) : 1;
  const trace: Trace = {
    type: "bar",
    name: opts.name ?? "weights",
    x: counts.map((_, k) => Number((lo + (k + 0.5) * w).toPrecision(6))),
    y: counts.map((c) => Number((c * norm).toPrecision(6))),
    width: w,
    marker: { color: opts.color ?? "#636efa" },
  };
  const layout = baseLayout(opts);
  layout.bargap = 0;
  layout.showlegend = false;
  layout.shapes = (opts.markers ?? []).map((m): LineShape => ({
    type: "line",
    xref: "x",
    yref: "paper",
    x0: m,
    x1: m,
    y0: 0,
    y1: 1,
    line: { color: "#ef553b", width: 1, dash: "dash" },
  }));
  return new Figure([trace], layout);
}

/** One named line of {@link lines}. */
export interface Line {
  /** Legend name. */
  name: string;
  /** x values. */
  x: readonly number[];
  /** y values. */
  y: readonly number[];
  /** Drawing mode (default lines+markers). */
  mode?: "lines" | "markers" | "lines+markers";
  /** Colour (default: the colour cycle by position). */
  color?: string;
  /** Line dash. */
  dash?: "solid" | "dash" | "dot";
}

/** Options of {@link lines}. */
export interface LinesOptions extends PlotOptions {
  /** Logarithmic y axis. */
  logY?: boolean;
  /** A reference value drawn as a dashed line across the plot. */
  baseline?: number;
  /** The baseline's label, at its right end. */
  baselineLabel?: string;
}

/** A line chart of one or more series. */
export function lines(series: readonly Line[], opts: LinesOptions = {}): Figure {
  const layout = baseLayout(opts);
  if (opts.logY) layout.yaxis = { ...layout.yaxis, type: "log" };
  if (opts.baseline !== undefined) {
    layout.shapes = [baselineShape(opts.baseline, opts.baselineLabel)];
  }
  return new Figure(
    series.map((s) => ({
      type: "scatter",
      name: s.name,
      x: [...s.x],
      y: [...s.y],
      mode: s.mode ?? "lines+markers",
      ...(s.color || s.dash ? { line: { color: s.color, dash: s.dash } } : {}),
      ...(s.color ? { marker: { color: s.color } } : {}),
    })),
    layout,
  );
}

/**
 * Shows figures side by side in one HTML output (each as {@link Figure.toHtml}: its SVG, made
 * interactive where plotly.js loads): for small multiples such as W, ΔW and W + ΔW.
 */
export function row(figures: readonly Figure[], caption?: string): Displayable {
  const inner = figures.map((f) => `<div style="flex:0 0 auto">${f.toHtml()}</div>`).join("");
  const cap = caption ? `<div style="margin:4px 0">${escapeHtml(caption)}</div>` : "";
  return {
    [DISPLAY_SYMBOL]: () => ({
      "text/html": `${cap}<div style="display:flex;flex-wrap:wrap;gap:8px">${inner}</div>`,
      "text/plain": figures.map(String).join("\n"),
    }),
    toString: () => figures.map(String).join("\n"),
  } as Displayable;
}

/** Where {@link plotlyLibrary} looks for plotly.js by default (deno.json's npm import). */
export const PLOTLY_JS_PATH: URL = new URL(
  "../../node_modules/plotly.js-dist-min/plotly.min.js",
  import.meta.url,
);

/**
 * plotly.js itself (about 4.6 MB), embedded in an HTML output so that the figures after it
 * become interactive in any page that runs the notebook's scripts, offline (e.g. the classic
 * notebook of `deno task notebook`, which has no plotly renderer). Display it once, before
 * the figures. The library defines `window.Plotly` even where require.js is loaded.
 * The file comes from npm's `plotly.js-dist-min` (`deno install` puts it in node_modules/).
 *
 * Committed notebooks do not embed it (the static SVG views render everywhere); with
 * `LORALAB_PLOTLY=inline` in the environment (as `deno task notebook` sets) the first figure
 * displayed in a kernel session embeds it automatically.
 */
export function plotlyLibrary(path: string | URL = PLOTLY_JS_PATH): Displayable {
  let src: string;
  try {
    src = Deno.readTextFileSync(path);
  } catch (e) {
    throw new Error(
      `plotlyLibrary: cannot read ${path} (${(e as Error).message}); ` +
        "run `deno install` in the repository (deno.json imports plotly.js-dist-min)",
    );
  }
  const html = `<script type="text/javascript">(function (define, module, exports) {\n` +
    src.replace(/<\/script/gi, "<\\/script") + `\n}).call(window);</script>\n` +
    `<div>plotly.js ${/v(\d+\.\d+\.\d+)/.exec(src.slice(0, 300))?.[1] ?? ""} loaded</div>`;
  return {
    [DISPLAY_SYMBOL]: () => ({ "text/html": html, "text/plain": "plotly.js loaded" }),
    toString: () => "plotly.js loaded",
  } as Displayable;
}

let librarySent = false;

function autoLibrary(): string {
  if (librarySent) return "";
  let mode: string | undefined;
  try {
    mode = Deno.env.get("LORALAB_PLOTLY");
  } catch {
    mode = undefined; // no --allow-env
  }
  if (mode !== "inline") return "";
  librarySent = true;
  try {
    return String(plotlyLibrary()[DISPLAY_SYMBOL]()["text/html"]) + "\n";
  } catch (e) {
    console.error(`LORALAB_PLOTLY=inline: ${(e as Error).message}`);
    return "";
  }
}
