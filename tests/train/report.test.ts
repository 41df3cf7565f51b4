import assert from "node:assert/strict";
import {
  fmtBytes,
  parameterTable,
  PLOTLY_FILE,
  PLOTLY_PACKAGE,
  type ReportData,
  writeReport,
} from "../../lib/train/report.ts";
import type { MetricsRow } from "../../lib/train/metrics.ts";

/** A report with every section filled, as the train command would write it. */
export function sampleReport(): ReportData {
  const metrics: MetricsRow[] = [{ step: 0, val_loss: 2.4 }];
  for (let s = 1; s <= 60; s++) {
    metrics.push({
      step: s,
      loss: 2.5 * Math.exp(-s / 40) + 1.2 + 0.05 * Math.sin(s),
      ...(s % 20 === 0 ? { val_loss: 1.2 * Math.exp(-s / 40) + 1.25 } : {}),
      lr: s <= 10 ? 2e-3 * s / 10 : 2e-4 + 1.8e-3 * 0.5 * (1 + Math.cos(Math.PI * (s - 10) / 50)),
      tokens_per_s: 950 + 30 * Math.cos(s / 3),
      time_s: s * 1.1,
    });
  }
  return {
    title: "qlora-2026-11-28T20-54-07Z",
    subtitle: "QLoRA (NF4 base, rank 8) on moby-dick, 60 steps, cpu backend",
    metrics,
    beforeAfter: [
      { metric: "validation loss (nats/token)", before: 2.4, after: 1.6321 },
      { metric: "bits/byte", before: 3.4625, after: 2.3546 },
    ],
    samples: [{
      prompt: "Call me Ishmael.",
      before: "Call me Ishmael. The president <script>alert(1)</script> said",
      after: "Call me Ishmael. Some years ago & more",
    }],
    config: { method: "qlora", quant: "nf4", rank: 8, alpha: 16, rslora: false, val: null },
    params: {
      trainable: 147456,
      frozen: 1824000,
      baseBytesF32: 7296000,
      baseBytesStored: 1046400,
      storedFormat: "nf4",
      optimizerBytes: 1179648,
    },
    tables: [{
      title: "Data",
      columns: ["split", "documents"],
      rows: [["train", 130], ["val", 6]],
    }],
  };
}

Deno.test("report: self-contained HTML with the data, plotly.min.js beside it", async () => {
  const run = await Deno.makeTempDir({ prefix: "loralab-report-" });
  const data = sampleReport();
  await writeReport(run, data);
  const html = await Deno.readTextFile(`${run}/report.html`);

  // Only local files: one relative script, no URLs to anywhere.
  const srcs = [...html.matchAll(/\b(?:src|href)\s*=\s*"([^"]*)"/g)].map((m) => m[1]);
  assert.deepEqual(srcs, [PLOTLY_FILE]);
  assert.doesNotMatch(html, /https?:\/\//);
  assert.doesNotMatch(html, /\/\/cdn|@import/);

  // plotly.min.js is the pinned package's file, byte for byte.
  const plotly = await Deno.readFile(`${run}/${PLOTLY_FILE}`);
  assert.ok(plotly.length > 1_000_000, `plotly.min.js is ${plotly.length} bytes`);
  assert.match(
    new TextDecoder().decode(plotly.subarray(0, 500)),
    new RegExp(`v${PLOTLY_PACKAGE.version.replaceAll(".", "\\.")}`),
  );
  const pkg = new URL(`../../node_modules/${PLOTLY_PACKAGE.name}/${PLOTLY_FILE}`, import.meta.url);
  assert.deepEqual(plotly, await Deno.readFile(pkg));

  // The metrics are embedded as JSON, every row.
  const json = /<script type="application\/json" id="metrics">(.*?)<\/script>/s.exec(html)![1];
  const rows = JSON.parse(json) as MetricsRow[];
  assert.equal(rows.length, data.metrics.length);
  assert.deepEqual(rows[0], { step: 0, val_loss: 2.4 });
  assert.equal(rows[20].val_loss, data.metrics[20].val_loss);
  assert.equal(rows[33].lr, data.metrics[33].lr);
  for (const id of ["chart-loss", "chart-lr", "chart-tps"]) {
    assert.match(html, new RegExp(`id="${id}"`));
  }

  // Tables: before/after, parameters, configuration, extra tables; text escaped.
  for (
    const s of [
      "Before and after",
      "validation loss (nats/token)",
      "3.4625",
      "2.3546",
      "Parameters and memory",
      "147,456",
      "1,824,000",
      "7.48%",
      "6.96 MiB",
      "1022 KiB",
      "6.97× smaller",
      "1.13 MiB",
      "Configuration",
      "<td>qlora</td>",
      "<td>false</td>",
      "<td>—</td>",
      "<h2>Data</h2>",
      '<td class="num">130</td>',
      "Call me Ishmael.",
      "&#60;script&#62;alert(1)&#60;/script&#62;",
      "Some years ago &#38; more",
    ]
  ) {
    assert.ok(html.includes(s), s);
  }
  assert.ok(!html.includes("<script>alert(1)"));

  // A second report reuses the copy; a truncated copy is replaced.
  await Deno.writeTextFile(`${run}/${PLOTLY_FILE}`, "x");
  await writeReport(run, { title: "t", metrics: [] });
  assert.equal((await Deno.stat(`${run}/${PLOTLY_FILE}`)).size, plotly.length);
  const entries = [];
  for await (const e of Deno.readDir(run)) entries.push(e.name);
  assert.deepEqual(entries.sort(), [PLOTLY_FILE, "report.html"]);
  await Deno.remove(run, { recursive: true });
});

Deno.test("report: metrics JSON cannot close its script element", async () => {
  const run = await Deno.makeTempDir({ prefix: "loralab-report-" });
  await writeReport(run, { title: "</script><b>", metrics: [{ step: 1, loss: NaN }] });
  const html = await Deno.readTextFile(`${run}/report.html`);
  assert.match(html, /<title>&#60;\/script&#62;&#60;b&#62;<\/title>/);
  assert.match(html, /id="metrics">\[\{"step":1,"loss":null\}\]<\/script>/);
  await Deno.remove(run, { recursive: true });
});

Deno.test("report: parameter table and byte formatting", () => {
  assert.equal(fmtBytes(512), "512 B");
  assert.equal(fmtBytes(1536), "1.50 KiB");
  assert.equal(fmtBytes(300 * 1024 * 1024), "300 MiB");
  const t = parameterTable({
    trainable: 1,
    frozen: 3,
    baseBytesF32: 4096,
    baseBytesStored: 1024,
    storedFormat: "int8",
  });
  assert.deepEqual(t.rows, [
    ["trainable parameters", 1, "25.00%"],
    ["frozen parameters", 3, "75.00%"],
    ["base weights as f32", "4.00 KiB", ""],
    ["base weights as stored (int8)", "1.00 KiB", "4.00× smaller"],
  ]);
});

Deno.test("report: the plotly package pinned in deno.json is the one the report copies", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  assert.equal(
    denoJson.imports[PLOTLY_PACKAGE.name],
    `npm:${PLOTLY_PACKAGE.name}@${PLOTLY_PACKAGE.version}`,
  );
});
