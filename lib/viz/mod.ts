/**
 * Figures and tables for notebooks in Deno's Jupyter kernel: plotly figures with a static SVG
 * view (so saved notebooks render anywhere), Markdown/HTML tables, and display helpers.
 *
 * Notebooks import it directly (`import * as viz from "../lib/viz/mod.ts"`); it is not part of
 * `lib/mod.ts`.
 *
 * @example
 * ```ts
 * import { bar, table } from "./mod.ts";
 * table([{ r: 8, params: 65536 }]); // shows as a table
 * bar(["r=1", "r=8"], [{ name: "params", values: [8192, 65536] }], { logY: true });
 * ```
 *
 * @module
 */

export * from "./display.ts";
export * from "./figure.ts";
export * from "./svg.ts";
export * from "./plotly.ts";
export * from "./table.ts";
