/**
 * A static SVG rendering of a {@link FigureSpec}: the picture a saved notebook shows where no
 * JavaScript runs (GitHub, nbconvert's HTML, untrusted notebooks, a notebook server without
 * plotly). It draws the subset of plotly that `figure.ts` types: one heatmap with a colour
 * bar, or bar/scatter traces on linear, log or category axes, plus line shapes and a legend.
 *
 * @module
 */

import { escapeHtml } from "./display.ts";
import {
  type Axis,
  colorAt,
  COLORWAY,
  type FigureSpec,
  titleText,
  type Trace,
  VIRIDIS,
} from "./figure.ts";

const FONT = `font-family="Open Sans, Arial, sans-serif"`;

/** A short label for a tick value: 16.8M, 65.5k, 0.25, 1e-5. */
export function tickLabel(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e4) {
    return new Intl.NumberFormat("en-US", { notation: "compact", maximumSignificantDigits: 3 })
      .format(v);
  }
  if (a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}

/** Evenly spaced "nice" ticks (steps of 1, 2 or 5 × 10^k) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return out;
}

interface Scale {
  /** Data value → pixel. */
  map(v: number): number;
  /** Tick positions (data units) and labels. */
  ticks: { v: number; label: string }[];
}

/**
 * The ticks and end points of a numeric axis covering [lo, hi]: whole decades for a log axis
 * (one tick per power of ten: no 2 and 5 in between), else "nice" ticks extended by a whole step
 * past the data (room for bar labels). The static SVG draws these, and the plotly layout gets the
 * same range, so that both views show the same axes.
 */
export function axisDomain(
  lo: number,
  hi: number,
  log: boolean,
): { lo: number; hi: number; ticks: number[] } {
  if (log) {
    const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
    const L1 = b > a ? b : a + 1;
    const every = Math.max(1, Math.ceil((L1 - a) / 8)); // at most about 8 labels
    const ticks = [];
    for (let k = a; k <= L1; k += every) ticks.push(10 ** k);
    return { lo: a, hi: L1, ticks }; // lo, hi in decades (plotly's log-axis range units)
  }
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
  let t = niceTicks(lo, hi);
  const step = t.length > 1 ? t[1] - t[0] : 1;
  if (t[t.length - 1] < hi - step * 1e-9) {
    t = [...t, Number((t[t.length - 1] + step).toPrecision(12))];
  }
  if (t[0] > lo + step * 1e-9) t = [Number((t[0] - step).toPrecision(12)), ...t];
  return { lo: t[0], hi: t[t.length - 1], ticks: t };
}

function numericScale(
  lo: number,
  hi: number,
  p0: number,
  p1: number,
  log: boolean,
  exact = false,
): Scale {
  const d = axisDomain(lo, hi, log);
  if (log) {
    const map = (v: number) =>
      p0 + (Math.log10(Math.max(v, 1e-300)) - d.lo) / (d.hi - d.lo) * (p1 - p0);
    return { map, ticks: d.ticks.map((v) => ({ v, label: tickLabel(v) })) };
  }
  // An explicit range is kept as given (ticks inside it); otherwise the nice domain.
  const [L0, L1] = exact && hi > lo ? [lo, hi] : [d.lo, d.hi];
  const ticks = exact
    ? niceTicks(L0, L1).filter((v) => v >= L0 - 1e-12 && v <= L1 + 1e-12)
    : d.ticks;
  const map = (v: number) => p0 + (v - L0) / (L1 - L0) * (p1 - p0);
  return { map, ticks: ticks.map((v) => ({ v, label: tickLabel(v) })) };
}

/** Approximate width in pixels of `s` at font size `size` (Open Sans / Arial). */
export function textWidth(s: string, size = 11): number {
  return s.length * size * 0.62;
}

/** The colour a trace is drawn in: its own, else the colour cycle by trace index. */
export function traceColor(traces: readonly Trace[], t: Trace): string {
  return t.marker?.color ?? t.line?.color ?? COLORWAY[traces.indexOf(t) % COLORWAY.length];
}

/** Where an x/y figure's legend goes. */
export type LegendPlace = "none" | "right" | "below";

/**
 * The legend placement and plot frame (pixels) of an x/y figure, shared by the static SVG and
 * the plotly layout (its margins), so that both views have the same plot area: the legend on the
 * right when its longest name is short, else below the plot (layout.legend.orientation "h");
 * category labels that do not fit their band are slanted (xaxis.tickangle -35).
 */
export function xyFrame(fig: FigureSpec): {
  L: number;
  T: number;
  R: number;
  B: number;
  legend: LegendPlace;
  legendWidth: number;
  legendRows: number;
  slant: boolean;
  slantExtra: number;
  items: { trace: Trace; x: number; row: number }[];
} {
  const W = fig.layout.width ?? 640, H = fig.layout.height ?? 400;
  const traces = fig.data, named = traces.filter((t) => t.name);
  const show = fig.layout.showlegend ?? named.length > 1;
  const widest = Math.max(0, ...named.map((t) => textWidth(t.name ?? "")));
  const legendWidth = Math.ceil(widest + 50);
  const orientation = (fig.layout.legend as { orientation?: string } | undefined)?.orientation;
  const legend: LegendPlace = !show || named.length === 0
    ? "none"
    : orientation === "h" || (orientation === undefined && legendWidth > 0.3 * W)
    ? "below"
    : "right";
  const L = 80, T = titleText(fig.layout.title) ? 50 : 20;
  const R = W - (legend === "right" ? legendWidth : 20);
  // Legend items below: left to right, wrapping at the plot's width.
  const items: { trace: Trace; x: number; row: number }[] = [];
  let x = 0, row = 0;
  if (legend === "below") {
    for (const t of named) {
      const w = textWidth(t.name ?? "") + 40;
      if (x > 0 && x + w > W - L) (x = 0), row++;
      items.push({ trace: t, x, row });
      x += w;
    }
  }
  const legendRows = legend === "below" ? row + 1 : 0;
  // Category labels: slanted when one does not fit its band.
  const categorical = fig.layout.xaxis?.type === "category" ||
    traces.some((t) => (t.x ?? []).some((v) => typeof v === "string"));
  const cats = categorical ? [...new Set(traces.flatMap((t) => (t.x ?? []).map(String)))] : [];
  const band = (R - L) / Math.max(cats.length, 1);
  const longest = Math.max(0, ...cats.map((c) => textWidth(c)));
  const slant = categorical && longest > 0.95 * band;
  const slantExtra = slant
    ? Math.min(0.35 * H, Math.ceil(longest * Math.sin(35 * Math.PI / 180)))
    : 0;
  const B = H - 60 - slantExtra - (legendRows ? legendRows * 20 + 8 : 0);
  return { L, T, R, B, legend, legendWidth, legendRows, slant, slantExtra, items };
}

function text(
  x: number,
  y: number,
  s: string,
  opts: {
    anchor?: string;
    size?: number;
    rotate?: boolean;
    angle?: number;
    color?: string;
    bold?: boolean;
  } = {},
): string {
  const deg = opts.angle ?? (opts.rotate ? -90 : 0);
  const tr = deg ? ` transform="rotate(${deg} ${x.toFixed(1)} ${y.toFixed(1)})"` : "";
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" text-anchor="${opts.anchor ?? "middle"}" ` +
    `font-size="${opts.size ?? 12}" fill="${opts.color ?? "#2a3f5f"}" ${FONT}` +
    `${opts.bold ? ` font-weight="bold"` : ""}${tr}>${escapeHtml(s)}</text>`;
}

/** FNV-1a hash of `s` in base 36 (deterministic element ids). */
function fnv(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(36);
}

/** Relative luminance (0 black … 1 white) of a #rrggbb colour. */
export function luminance(hex: string): number {
  const n = parseInt(hex.slice(1), 16);
  const c = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((v) => {
    const u = v / 255;
    return u <= 0.03928 ? u / 12.92 : ((u + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

function dashArray(dash: string | undefined): string {
  return dash === "dash"
    ? ` stroke-dasharray="6 4"`
    : dash === "dot"
    ? ` stroke-dasharray="2 3"`
    : "";
}

/** Formats a heatmap cell label from `texttemplate` (`%{z:.2f}`, `%{z}`, `%{text}`). */
function cellLabel(tr: Trace, i: number, j: number, z: number): string {
  const tpl = tr.texttemplate;
  if (!tpl) return "";
  return tpl.replace(/%\{(z|text)(?::\.(\d+)f)?\}/g, (_, key: string, d?: string) => {
    if (key === "text") {
      const row = tr.text?.[i];
      return String(Array.isArray(row) ? row[j] : row ?? "");
    }
    if (d === undefined) return tickLabel(z);
    const f = z.toFixed(Number(d));
    return /^-0\.?0*$/.test(f) ? f.slice(1) : f; // no "-0.00"
  });
}

function axisTitles(
  xa: Axis | undefined,
  ya: Axis | undefined,
  L: number,
  T: number,
  R: number,
  B: number,
  below = 0,
  yTitleX = L - 52,
): string {
  let s = "";
  const xt = titleText(xa?.title), yt = titleText(ya?.title);
  if (xt) s += text((L + R) / 2, B + 42 + below, xt, { size: 13 });
  if (yt) s += text(yTitleX, (T + B) / 2, yt, { size: 13, rotate: true });
  return s;
}

function renderHeatmap(fig: FigureSpec, W: number, H: number, title: string): string {
  const tr = fig.data[0];
  const z = tr.z ?? [];
  const rows = z.length, cols = rows ? z[0].length : 0;
  const flat = z.flat().filter(Number.isFinite);
  const zmin = tr.zmin ?? Math.min(...flat), zmax = tr.zmax ?? Math.max(...flat);
  const scale = tr.colorscale ?? VIRIDIS;
  const rowLabels = (tr.y ?? []).map(String);
  const labelW = Math.max(0, ...rowLabels.map((l) => textWidth(l)));
  // Room for the row labels (never cut) and the y title.
  const L = Math.max(40, Math.ceil(labelW + 12)) + (fig.layout.yaxis?.title ? 30 : 0);
  const T = title ? 50 : 20, R = W - 85, B = H - 60;
  const cw = (R - L) / Math.max(cols, 1), ch = (B - T) / Math.max(rows, 1);
  const reversed = fig.layout.yaxis?.autorange === "reversed";
  const rowY = (i: number) => reversed ? T + i * ch : B - (i + 1) * ch;
  const xs = tr.x ?? Array.from({ length: cols }, (_, j) => j);
  const ys = tr.y ?? Array.from({ length: rows }, (_, i) => i);
  let s = "";
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = z[i][j];
      const t = zmax > zmin ? (v - zmin) / (zmax - zmin) : 0.5;
      const x = L + j * cw, y = rowY(i);
      s += `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(cw + 0.5).toFixed(1)}" ` +
        `height="${(ch + 0.5).toFixed(1)}" fill="${colorAt(scale, t)}"/>`;
      const lab = cellLabel(tr, i, j, v);
      if (lab) {
        const dark = luminance(colorAt(scale, t)) < 0.45; // white text on dark cells
        s += text(x + cw / 2, y + ch / 2 + 4, lab, { size: 11, color: dark ? "#fff" : "#222" });
      }
    }
  }
  const step = Math.max(1, Math.ceil(cols / 16));
  for (let j = 0; j < cols; j += step) s += text(L + (j + 0.5) * cw, B + 16, String(xs[j]));
  const rstep = Math.max(1, Math.ceil(rows / 16));
  for (let i = 0; i < rows; i += rstep) {
    s += text(L - 6, rowY(i) + ch / 2 + 4, String(ys[i]), { anchor: "end" });
  }
  // Colour bar.
  const bx = R + 20, bw = 14, n = 32;
  for (let k = 0; k < n; k++) {
    const y = B - (k + 1) * (B - T) / n;
    s +=
      `<rect x="${bx}" y="${y.toFixed(1)}" width="${bw}" height="${
        ((B - T) / n + 0.5).toFixed(1)
      }" ` +
      `fill="${colorAt(scale, (k + 0.5) / n)}"/>`;
  }
  const barTitle = (tr.colorbar as { title?: { text?: string } } | undefined)?.title?.text;
  if (barTitle) s += text(bx + bw / 2, T - 8, barTitle, { size: 11 });
  for (const [v, y] of [[zmax, T + 4], [(zmin + zmax) / 2, (T + B) / 2 + 4], [zmin, B]] as const) {
    s += text(bx + bw + 4, y, tickLabel(Number(v.toPrecision(3))), { anchor: "start", size: 11 });
  }
  return s + axisTitles(fig.layout.xaxis, fig.layout.yaxis, L, T, R, B, 0, L - labelW - 22);
}

/**
 * The data ranges of an x/y figure's axes: y from the traces (bars from 0 on a linear axis, an
 * explicit `yaxis.range` kept as given), x from numeric values and bar widths, or null for
 * categories.
 */
export function xyRanges(fig: FigureSpec): {
  y: { lo: number; hi: number; log: boolean; exact: boolean };
  x: { lo: number; hi: number } | null;
  cats: string[];
} {
  const traces = fig.data;
  const categorical = fig.layout.xaxis?.type === "category" ||
    traces.some((t) => (t.x ?? []).some((v) => typeof v === "string"));
  const log = fig.layout.yaxis?.type === "log";
  const ys = traces.flatMap((t) => (t.y ?? []) as number[]).filter(Number.isFinite);
  for (const sh of fig.layout.shapes ?? []) if (sh.yref !== "paper") ys.push(sh.y0, sh.y1);
  const bars = traces.some((t) => t.type === "bar");
  let lo = Math.min(...ys), hi = Math.max(...ys), exact = false;
  const yRange = fig.layout.yaxis?.range;
  if (!log && Array.isArray(yRange) && yRange.length === 2) {
    [lo, hi] = yRange as [number, number]; // an explicit range (bars are cut at its bottom)
    exact = true;
  } else if (bars && !log) [lo, hi] = [Math.min(0, lo), Math.max(0, hi)];
  if (fig.layout.barmode === "stack" && !exact) {
    const totals = new Map<string, number>(); // stacked bars: the tallest stack sets the top
    for (const t of traces.filter((t) => t.type === "bar")) {
      (t.x ?? []).forEach((v, k) => {
        const key = String(v);
        totals.set(key, (totals.get(key) ?? 0) + Math.max(0, Number((t.y ?? [])[k]) || 0));
      });
    }
    hi = Math.max(hi, ...totals.values());
  }
  if (log) lo = Math.min(...ys.filter((v) => v > 0));
  const cats: string[] = [];
  let xlo = Infinity, xhi = -Infinity;
  for (const t of traces) {
    (t.x ?? []).forEach((v, k) => {
      if (categorical) {
        if (!cats.includes(String(v))) cats.push(String(v));
      } else {
        const w = t.type === "bar"
          ? (Array.isArray(t.width) ? t.width[k] : (t.width as number | undefined) ?? 0.8) / 2
          : 0;
        xlo = Math.min(xlo, (v as number) - w);
        xhi = Math.max(xhi, (v as number) + w);
      }
    });
  }
  for (const sh of fig.layout.shapes ?? []) {
    if (!categorical && sh.xref !== "paper") {
      xlo = Math.min(xlo, sh.x0, sh.x1);
      xhi = Math.max(xhi, sh.x0, sh.x1);
    }
  }
  return { y: { lo, hi, log, exact }, x: categorical ? null : { lo: xlo, hi: xhi }, cats };
}

function renderXY(fig: FigureSpec): string {
  const traces = fig.data;
  const { L, T, R, B, legend, slant, slantExtra, items } = xyFrame(fig);
  const rg = xyRanges(fig);
  const categorical = rg.x === null, cats = rg.cats;
  const logY = rg.y.log;
  const bars = traces.filter((t) => t.type === "bar");
  const sy = numericScale(rg.y.lo, rg.y.hi, B, T, logY, rg.y.exact);
  const band = (R - L) / Math.max(cats.length, 1);
  const sx: Scale = categorical
    ? {
      map: (v) => L + (v + 0.5) * band,
      ticks: cats.map((c, k) => ({ v: k, label: c })),
    }
    : numericScale(rg.x!.lo, rg.x!.hi, L, R, false);
  const xOf = (v: number | string) =>
    categorical ? sx.map(cats.indexOf(String(v))) : sx.map(v as number);

  // A clip id unique to the figure: several SVGs inline in one HTML page share one id space.
  const clip = `clip-${fnv(JSON.stringify(fig))}`;
  let s = `<defs><clipPath id="${clip}"><rect x="${L}" y="${T}" width="${R - L}" height="${
    B - T
  }"/></clipPath></defs>`;
  s += `<rect x="${L}" y="${T}" width="${R - L}" height="${B - T}" fill="#e5ecf6"/>`;
  for (const t of sy.ticks) {
    const y = sy.map(t.v);
    if (y < T - 0.5 || y > B + 0.5) continue;
    s += `<line x1="${L}" x2="${R}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#fff"/>`;
    s += text(L - 6, y + 4, t.label, { anchor: "end", size: 11 });
  }
  const xstep = categorical ? 1 : Math.max(1, Math.ceil(sx.ticks.length / 14));
  sx.ticks.forEach((t, k) => {
    const x = sx.map(t.v);
    if (k % xstep || x < L - 0.5 || x > R + 0.5) return;
    if (!categorical) {
      s += `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${T}" y2="${B}" stroke="#fff"/>`;
    }
    if (slant) s += text(x + 4, B + 14, t.label, { size: 11, anchor: "end", angle: -35 });
    else s += text(x, B + 16, t.label, { size: 11 });
  });

  const base = logY ? B : Math.min(B, Math.max(T, sy.map(0)));
  const stack = fig.layout.barmode === "stack";
  const group = fig.layout.barmode === "group" || fig.layout.barmode === undefined
    ? bars.length
    : 1;
  const stacked = new Map<string, number>(); // stack mode: each category's height so far
  const gap = fig.layout.bargap ?? 0.2;
  let plot = "", labels = "";
  traces.forEach((t) => {
    const color = traceColor(traces, t);
    const xs = t.x ?? [], yv = (t.y ?? []) as number[];
    if (t.type === "bar") {
      const bi = bars.indexOf(t);
      xs.forEach((xv, k) => {
        let x0: number, w: number;
        if (categorical) {
          w = band * (1 - gap) / group;
          x0 = xOf(xv) - band * (1 - gap) / 2 + (group > 1 ? bi * w : 0);
        } else {
          const wd = Array.isArray(t.width) ? t.width[k] : (t.width as number | undefined) ?? 0.8;
          x0 = sx.map((xv as number) - wd / 2);
          w = sx.map((xv as number) + wd / 2) - x0;
        }
        const below = stack ? stacked.get(String(xv)) ?? 0 : 0;
        if (stack) stacked.set(String(xv), below + yv[k]);
        const bottom = stack ? Math.min(B, Math.max(T, sy.map(below))) : base;
        const y = Math.min(B, Math.max(T, sy.map(below + yv[k])));
        plot +=
          `<rect x="${x0.toFixed(1)}" y="${Math.min(y, bottom).toFixed(1)}" width="${
            Math.max(w, 0.5).toFixed(1)
          }" height="${Math.abs(bottom - y).toFixed(1)}" fill="${color}"` +
          `${fig.layout.barmode === "overlay" ? ` fill-opacity="0.6"` : ""}/>`;
        const lab = t.texttemplate === "%{text}" ? String(t.text?.[k] ?? "") : "";
        if (lab) labels += text(x0 + w / 2, Math.min(y, bottom) - 4, lab, { size: 10 });
      });
    } else {
      const mode = t.mode ?? "lines+markers";
      const pts = xs.map((xv, k) => [xOf(xv), sy.map(yv[k])]);
      if (mode.includes("lines")) {
        plot += `<polyline fill="none" stroke="${color}" stroke-width="${t.line?.width ?? 2}"` +
          `${dashArray(t.line?.dash)} points="${
            pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")
          }"/>`;
      }
      if (mode.includes("markers")) {
        for (const [x, y] of pts) {
          plot +=
            `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${(t.marker?.size ?? 6) / 2}" ` +
            `fill="${color}"/>`;
        }
      }
    }
  });
  for (const sh of fig.layout.shapes ?? []) {
    const px = (v: number) => sh.xref === "paper" ? L + v * (R - L) : sx.map(v);
    const py = (v: number) => sh.yref === "paper" ? B - v * (B - T) : sy.map(v);
    plot += `<line x1="${px(sh.x0).toFixed(1)}" x2="${px(sh.x1).toFixed(1)}" y1="${
      py(sh.y0).toFixed(1)
    }" y2="${py(sh.y1).toFixed(1)}" stroke="${sh.line?.color ?? "#444"}" stroke-width="${
      sh.line?.width ?? 1
    }"${dashArray(sh.line?.dash)}/>`;
    if (sh.label?.text) {
      labels += text(
        Math.max(px(sh.x0), px(sh.x1)) - 4,
        Math.min(py(sh.y0), py(sh.y1)) - 5,
        sh.label.text,
        { anchor: "end", size: 11, color: sh.line?.color ?? "#444" },
      );
    }
  }
  s += `<g clip-path="url(#${clip})">${plot}</g>${labels}`;
  const swatch = (t: Trace, x: number, y: number) => {
    const color = traceColor(traces, t);
    return t.type === "scatter" && (t.mode ?? "lines+markers") !== "markers"
      ? `<line x1="${x}" x2="${x + 20}" y1="${y - 4}" y2="${y - 4}" stroke="${color}" ` +
        `stroke-width="2"${dashArray(t.line?.dash)}/>`
      : `<rect x="${x + 3}" y="${y - 9}" width="14" height="10" fill="${color}"/>`;
  };
  if (legend === "right") {
    traces.filter((t) => t.name).forEach((t, k) => {
      const y = T + 10 + k * 20;
      s += swatch(t, R + 10, y) + text(R + 34, y, t.name ?? "", { anchor: "start", size: 11 });
    });
  } else if (legend === "below") {
    const top = B + 50 + slantExtra; // below the x axis title
    for (const { trace, x, row } of items) {
      const y = top + 14 + row * 20;
      s += swatch(trace, L + x, y) +
        text(L + x + 24, y, trace.name ?? "", { anchor: "start", size: 11 });
    }
  }
  return s + axisTitles(fig.layout.xaxis, fig.layout.yaxis, L, T, R, B, slantExtra);
}

/** Renders `fig` as a standalone SVG document (no scripts, no external resources). */
export function renderSvg(fig: FigureSpec): string {
  const W = fig.layout.width ?? 640, H = fig.layout.height ?? 400;
  const title = titleText(fig.layout.title);
  const body = fig.data.length && fig.data[0].type === "heatmap"
    ? renderHeatmap(fig, W, H, title)
    : renderXY(fig);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `viewBox="0 0 ${W} ${H}"><rect width="${W}" height="${H}" fill="#fff"/>` +
    (title ? text(W / 2, 28, title, { size: 15 }) : "") + body + `</svg>`;
}
