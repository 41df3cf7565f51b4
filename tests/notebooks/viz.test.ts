/**
 * lib/viz: the MIME bundles notebooks display (plotly JSON, HTML with a static SVG, SVG,
 * plain text), table formatting, and the static renderer's axes.
 */

import assert from "node:assert/strict";
import * as viz from "../../lib/viz/mod.ts";

Deno.test("viz: a figure's bundle has plotly JSON, HTML with the SVG inside, SVG and text", () => {
  const fig = viz.heatmap([[1, -2], [3, 4]], { title: "m", annotate: 1 });
  const b = fig[viz.DISPLAY_SYMBOL]();
  const spec = b[viz.PLOTLY_MIME] as viz.FigureSpec;
  assert.equal(spec.data[0].type, "heatmap");
  assert.deepEqual(spec.layout.title, { text: "m" }); // plotly.js 3+ wants { text }
  assert.deepEqual([spec.data[0].zmin, spec.data[0].zmax], [-4, 4]); // diverging, centred on 0
  const svg = b["image/svg+xml"] as string;
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.includes(">-2.0<") && svg.includes(">4.0<"), "cell annotations");
  assert.ok((b["text/html"] as string).includes(svg), "HTML falls back to the SVG");
  assert.ok(!(b["text/html"] as string).includes("</script><"), "one script");
  assert.equal(b["text/plain"], "Figure(heatmap 2×2): m");
});

Deno.test("viz: histogram bins agree with the data; markers become line shapes", () => {
  const fig = viz.histogram([0, 0.1, 0.2, 0.9, 1], { bins: 2, range: [0, 1], markers: [0.5] });
  assert.deepEqual(fig.data[0].y, [3, 2]);
  assert.deepEqual(fig.data[0].x, [0.25, 0.75]);
  assert.equal(fig.layout.shapes?.[0].x0, 0.5);
});

Deno.test("viz: table formats integers with separators and aligns numbers right", () => {
  const t = viz.table([{ r: 8, params: 65536, pct: 0.390625 }, {
    r: 16,
    params: 131072,
    pct: 0.78125,
  }]);
  assert.deepEqual(t.cells, [["8", "65,536", "0.3906"], ["16", "131,072", "0.7813"]]);
  const b = t[viz.DISPLAY_SYMBOL]();
  assert.ok((b["text/markdown"] as string).includes("| ---: | ---: | ---: |"));
  assert.ok((b["text/html"] as string).includes('<td style="text-align:right">65,536</td>'));
  assert.equal(String(t).split("\n")[2], " 8   65,536  0.3906");
  assert.equal(viz.formatNumber(Infinity), "∞");
  assert.equal(viz.formatNumber(16777216), "16,777,216");
});

Deno.test("viz: matrix shows fixed decimals without -0", () => {
  const m = viz.matrix([1, -0.001, 2.5, 3], [2, 2], { digits: 1 });
  assert.deepEqual(m.cells, [["0", "1.0", "0.0"], ["1", "2.5", "3.0"]]);
});

Deno.test("viz: nice ticks and log axes", () => {
  assert.deepEqual(viz.niceTicks(0, 73.7), [0, 20, 40, 60]);
  assert.deepEqual(viz.niceTicks(-1, 1, 4), [-1, -0.5, 0, 0.5, 1]);
  const svg = viz.bar(["a", "b"], [{ name: "n", values: [8192, 16777216] }], { logY: true })
    .toSvg();
  for (const label of ["1000", "10K", "100M"]) assert.ok(svg.includes(`>${label}<`), label);
});

Deno.test("viz: display outside Jupyter prints text/plain", async () => {
  const logged: string[] = [];
  const orig = console.log;
  console.log = (s: string) => logged.push(s);
  try {
    assert.equal(viz.inJupyter(), false);
    await viz.display(viz.markdown("**hi**"));
  } finally {
    console.log = orig;
  }
  assert.deepEqual(logged, ["**hi**"]);
});

Deno.test("viz: an explicit y range cuts bars at the bottom of the plot", () => {
  const fig = viz.bar(["a", "b"], [{ name: "loss", values: [3.1, 3.4] }]);
  const svg = new viz.Figure(fig.data, {
    ...fig.layout,
    yaxis: { ...fig.layout.yaxis, range: [3, 3.5] },
  }).toSvg();
  assert.ok(svg.includes(">3.5<") && !svg.includes(">0<"), "ticks follow the range, not 0");
  const heights = [
    ...svg.matchAll(
      /<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="#636efa"/g,
    ),
  ]
    .map((m) => Number(m[1]) + Number(m[2]));
  assert.equal(heights.length, 2);
  assert.equal(heights[0], heights[1], "both bars end at the plot's bottom edge");
});

Deno.test("viz: figure HTML loads plotly.js from npm's package (relative URLs), never a CDN", () => {
  const html = viz.lines([{ name: "a", x: [1, 2], y: [3, 4] }]).toHtml();
  assert.ok(html.includes("../node_modules/plotly.js-dist-min/plotly.min.js"));
  assert.ok(
    !/https?:/.test(html.replace('xmlns="http://www.w3.org/2000/svg"', "")),
    "no remote URL",
  );
  assert.ok(html.includes("w.define = undefined"), "AMD define hidden while plotly.js loads");
});

Deno.test("viz: liveDisplay outside Jupyter prints every version", async () => {
  const logged: string[] = [];
  const orig = console.log;
  console.log = (s: string) => logged.push(s);
  try {
    const live = await viz.liveDisplay(viz.markdown("step 0"));
    await live.update(viz.markdown("step 1"));
    assert.match(live.id, /^loralab-live-/);
  } finally {
    console.log = orig;
  }
  assert.deepEqual(logged, ["step 0", "step 1"]);
});

Deno.test("viz: log axes label powers of ten only, in both views, over the same range", () => {
  const fig = viz.lines([{ name: "a", x: [1, 2, 3], y: [0.002, 0.5, 30] }], { logY: true });
  const svg = fig.toSvg();
  for (const label of ["0.001", "0.01", "0.1", "1", "10", "100"]) {
    assert.ok(svg.includes(`>${label}<`), label);
  }
  const yLabels = [...svg.matchAll(/text-anchor="end"[^>]*>([^<]*)</g)].map((m) => m[1]);
  assert.deepEqual(yLabels, ["0.001", "0.01", "0.1", "1", "10", "100"], "no minor-tick labels");
  assert.deepEqual(fig.layout.yaxis?.range, [-3, 2]); // plotly's log range: decades
  assert.deepEqual(fig.layout.yaxis?.tickvals, [0.001, 0.01, 0.1, 1, 10, 100]);
});

Deno.test("viz: plotly gets the static view's colours, background and legend placement", () => {
  const short = viz.lines([{ name: "a", x: [1, 2], y: [1, 2] }, {
    name: "b",
    x: [1, 2],
    y: [2, 1],
  }]);
  assert.deepEqual(short.layout.colorway, [...viz.COLORWAY]);
  assert.equal(short.layout.plot_bgcolor, "#e5ecf6");
  assert.equal((short.layout.legend as { orientation?: string }).orientation, undefined);
  const names = ["full fine-tuning of every weight", "layer-wise (freeze lower 2 of 4)", "c"];
  const long = viz.lines(names.map((name, k) => ({ name, x: [1, 2], y: [k, k + 1] })), {
    width: 600,
  });
  assert.equal((long.layout.legend as { orientation?: string }).orientation, "h");
  const svg = long.toSvg();
  // Every legend entry is drawn inside the picture (x + text width < 600).
  for (const name of names) {
    const m = new RegExp(`<text x="([\\d.]+)"[^>]*>${name.replace(/[()]/g, "\\$&")}<`).exec(svg);
    assert.ok(m, name);
    assert.ok(Number(m[1]) + viz.textWidth(name) < 600, `${name} clipped`);
  }
});

Deno.test("viz: a bar chart with a baseline zooms in and draws it dashed", () => {
  const fig = viz.bar(["a", "b"], [{ name: "loss", values: [1.745, 1.768] }], {
    baseline: 1.861,
    baselineLabel: "base model",
  });
  const [lo, hi] = fig.layout.yaxis!.range!;
  assert.ok(lo > 1.6 && lo < 1.745 && hi > 1.861, `range ${lo}..${hi}`);
  assert.equal(fig.layout.shapes?.[0].line?.dash, "dash");
  const svg = fig.toSvg();
  assert.ok(svg.includes('stroke-dasharray="6 4"') && svg.includes(">base model<"));
});

Deno.test("viz: heatmap cell text is white on dark cells and dark on light ones", () => {
  const svg = viz.heatmap([[0, 12]], { colors: "sequential", annotate: 0, unit: "bits" }).toSvg();
  assert.match(svg, /fill="#fff"[^>]*>0</); // dark purple cell
  assert.match(svg, /fill="#222"[^>]*>12</); // yellow cell
  assert.ok(svg.includes(">bits<"), "the colour bar names the unit");
});
