/**
 * The plotly figure types that loralab's helpers produce (a small, typed subset of plotly.js's
 * schema: heatmap, bar and scatter traces, linear/log/category axes, line shapes) and the
 * colour scales they use.
 *
 * @module
 */

/** A colour scale: stops from 0 to 1, each `[position, "rgb(r,g,b)" | "#rrggbb"]`. */
export type ColorScale = readonly (readonly [number, string])[];

/** Plotly's "Viridis" (sequential). */
export const VIRIDIS: ColorScale = [
  [0, "#440154"],
  [0.111, "#482878"],
  [0.222, "#3e4989"],
  [0.333, "#31688e"],
  [0.444, "#26828e"],
  [0.556, "#1f9e89"],
  [0.667, "#35b779"],
  [0.778, "#6ece58"],
  [0.889, "#b5de2b"],
  [1, "#fde725"],
];

/** A diverging blue–white–red scale for signed values (centre white at 0.5). */
export const BLUE_WHITE_RED: ColorScale = [
  [0, "#2166ac"],
  [0.25, "#92c5de"],
  [0.5, "#f7f7f7"],
  [0.75, "#f4a582"],
  [1, "#b2182b"],
];

/** Plotly's default trace colours, in order. */
export const COLORWAY: readonly string[] = [
  "#636efa",
  "#ef553b",
  "#00cc96",
  "#ab63fa",
  "#ffa15a",
  "#19d3f3",
  "#ff6692",
  "#b6e880",
];

/** A title: plain text or plotly's `{ text }` form. */
export type Title = string | { text: string };

/** One trace. Fields beyond these pass through to plotly.js unchanged. */
export interface Trace {
  /** Trace type. */
  type: "heatmap" | "bar" | "scatter";
  /** Legend name. */
  name?: string;
  /** x values (categories or numbers). */
  x?: readonly (number | string)[];
  /** y values (numbers for bar/scatter; categories for a heatmap's rows). */
  y?: readonly (number | string)[];
  /** Heatmap values, z[row][col]. */
  z?: readonly (readonly number[])[];
  /** Heatmap colour scale. */
  colorscale?: ColorScale;
  /** Heatmap value mapped to the scale's start. */
  zmin?: number;
  /** Heatmap value mapped to the scale's end. */
  zmax?: number;
  /** Cell or bar labels. */
  text?: readonly unknown[];
  /** Label template, e.g. `"%{z:.2f}"` or `"%{text}"`. */
  texttemplate?: string;
  /** Bar widths in x units (numeric x). */
  width?: number | readonly number[];
  /** Scatter drawing mode. */
  mode?: "lines" | "markers" | "lines+markers";
  /** Marker style. */
  marker?: { color?: string; size?: number };
  /** Line style. */
  line?: { color?: string; width?: number; dash?: "solid" | "dash" | "dot" };
  /** Other plotly.js attributes. */
  [key: string]: unknown;
}

/** An axis. */
export interface Axis {
  /** Axis title. */
  title?: Title;
  /** Scale type. */
  type?: "linear" | "log" | "category";
  /** `"reversed"` draws the first heatmap row at the top. */
  autorange?: boolean | "reversed";
  /** Explicit value range [low, high] (linear axes; the static SVG honours it on y). */
  range?: readonly [number, number];
  /** Other plotly.js attributes. */
  [key: string]: unknown;
}

/** A line drawn over the plot (e.g. a marker at a code value), in data or paper units. */
export interface LineShape {
  /** Shape kind. */
  type: "line";
  /** x reference: data ("x") or the plot's width from 0 to 1 ("paper"). */
  xref?: "x" | "paper";
  /** y reference: data ("y") or the plot's height from 0 to 1 ("paper"). */
  yref?: "y" | "paper";
  /** Start x. */
  x0: number;
  /** End x. */
  x1: number;
  /** Start y. */
  y0: number;
  /** End y. */
  y1: number;
  /** Line style. */
  line?: { color?: string; width?: number; dash?: "solid" | "dash" | "dot" };
  /** A label at the line's end (plotly.js's shape label; the static SVG draws it too). */
  label?: { text: string; [key: string]: unknown };
}

/** Figure layout. */
export interface Layout {
  /** Figure title. */
  title?: Title;
  /** Width in pixels (default 640). */
  width?: number;
  /** Height in pixels (default 400). */
  height?: number;
  /** x axis. */
  xaxis?: Axis;
  /** y axis. */
  yaxis?: Axis;
  /** How bar traces share a category: side by side, over each other, or stacked. */
  barmode?: "group" | "overlay" | "stack";
  /** Gap between bars of neighbouring categories, as a fraction of the band. */
  bargap?: number;
  /** Whether to show the legend (default: when more than one trace has a name). */
  showlegend?: boolean;
  /** Lines over the plot. */
  shapes?: readonly LineShape[];
  /** Other plotly.js attributes. */
  [key: string]: unknown;
}

/** A plotly figure: what `Plotly.newPlot(div, data, layout)` takes. */
export interface FigureSpec {
  /** Traces. */
  data: readonly Trace[];
  /** Layout. */
  layout: Layout;
}

/** The text of a title in either form. */
export function titleText(t: Title | undefined): string {
  return t === undefined ? "" : typeof t === "string" ? t : t.text;
}

function parseColor(c: string): [number, number, number] {
  const hex = /^#([0-9a-f]{6})$/i.exec(c);
  if (hex) {
    const n = parseInt(hex[1], 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  const rgb = /^rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)/i.exec(c);
  if (rgb) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  throw new Error(`colour ${JSON.stringify(c)}: use #rrggbb or rgb(r,g,b)`);
}

/** The colour at `t` ∈ [0, 1] of a scale (linear in RGB between stops), as `#rrggbb`. */
export function colorAt(scale: ColorScale, t: number): string {
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  let i = 1;
  while (i < scale.length - 1 && scale[i][0] < u) i++;
  const [p0, c0] = scale[i - 1], [p1, c1] = scale[i];
  const f = p1 > p0 ? (u - p0) / (p1 - p0) : 0;
  const a = parseColor(c0), b = parseColor(c1);
  const mix = a.map((v, k) => Math.round(v + (b[k] - v) * Math.min(1, Math.max(0, f))));
  return "#" + mix.map((v) => v.toString(16).padStart(2, "0")).join("");
}
