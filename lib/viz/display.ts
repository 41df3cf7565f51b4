/**
 * Jupyter display for Deno's kernel: MIME bundles, the display symbol, HTML and Markdown.
 *
 * Deno's kernel (`deno jupyter`) shows the last expression of a cell through its
 * `Symbol.for("Jupyter.display")` method when it has one, and `Deno.jupyter.display(bundle,
 * { raw: true })` sends a bundle at any point of a cell. Outside the kernel (`deno run`,
 * tests) {@link display} prints the bundle's `text/plain`.
 *
 * @module
 */

/** A MIME bundle: MIME type → content (a string, or JSON for `application/*+json` types). */
export type MediaBundle = Record<string, unknown>;

/** The symbol Deno's Jupyter kernel looks for (`Deno.jupyter.$display`). */
export const DISPLAY_SYMBOL: unique symbol = Symbol.for("Jupyter.display");

/** An object that Deno's Jupyter kernel displays as a MIME bundle. */
export interface Displayable {
  /** The bundle to show. */
  [DISPLAY_SYMBOL](): MediaBundle;
}

/** Whether `x` has a Jupyter display method. */
export function isDisplayable(x: unknown): x is Displayable {
  return typeof x === "object" && x !== null &&
    typeof (x as Record<symbol, unknown>)[DISPLAY_SYMBOL] === "function";
}

/**
 * Wraps a bundle as a value the kernel displays (return it as a cell's last expression).
 * `toString()` gives its `text/plain`.
 *
 * @example
 * ```ts
 * displayable({ "text/plain": "hi", "text/html": "<b>hi</b>" });
 * ```
 */
export function displayable(bundle: MediaBundle): Displayable {
  return {
    [DISPLAY_SYMBOL]: () => bundle,
    toString: () => String(bundle["text/plain"] ?? ""),
  } as Displayable;
}

/** Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A value that shows as HTML (with `text/plain` being the HTML source stripped of tags). */
export function html(source: string): Displayable {
  return displayable({
    "text/html": source,
    "text/plain": source.replace(/<[^>]*>/g, ""),
  });
}

/** A value that shows as Markdown (its `text/plain` is the Markdown source). */
export function markdown(source: string): Displayable {
  return displayable({ "text/markdown": source, "text/plain": source });
}

interface JupyterNamespace {
  display(
    obj: unknown,
    opts?: { raw?: boolean; display_id?: string; update?: boolean },
  ): Promise<void>;
}

function kernel(): JupyterNamespace | undefined {
  try {
    // Outside the kernel, reading `Deno.jupyter` throws.
    const ns = (Deno as unknown as { jupyter?: JupyterNamespace }).jupyter;
    return typeof ns?.display === "function" ? ns : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the code runs inside Deno's Jupyter kernel. */
export function inJupyter(): boolean {
  return kernel() !== undefined;
}

/**
 * Shows `x` now, in the middle of a cell: a {@link Displayable} (its bundle) or a raw bundle.
 * Outside Jupyter it prints the `text/plain` representation to stdout.
 */
export async function display(x: Displayable | MediaBundle): Promise<void> {
  const bundle = isDisplayable(x) ? x[DISPLAY_SYMBOL]() : x;
  const k = kernel();
  if (k) {
    await k.display(bundle, { raw: true });
  } else {
    console.log(String(bundle["text/plain"] ?? ""));
  }
}

/** An output that can be replaced in place (see {@link liveDisplay}). */
export interface LiveDisplay {
  /** The Jupyter display id. */
  readonly id: string;
  /** Replaces the shown output with `x` (outside Jupyter: prints its `text/plain`). */
  update(x: Displayable | MediaBundle): Promise<void>;
}

let liveCounter = 0;

/**
 * Shows `x` now and returns a handle that replaces it in place: Jupyter's `display_data` with
 * a `display_id`, then `update_display_data` messages (Deno's
 * `Deno.jupyter.display(bundle, { raw: true, display_id, update: true })`). A saved notebook
 * keeps the last version. For progress that updates while a cell runs.
 * Outside Jupyter every version's `text/plain` is printed.
 *
 * @example
 * ```ts
 * const live = await liveDisplay(markdown("step 0"));
 * for (let s = 1; s <= 3; s++) await live.update(markdown(`step ${s}`));
 * ```
 */
export async function liveDisplay(
  x: Displayable | MediaBundle,
  id = `loralab-live-${Date.now().toString(36)}-${++liveCounter}`,
): Promise<LiveDisplay> {
  const show = async (v: Displayable | MediaBundle, update: boolean) => {
    const bundle = isDisplayable(v) ? v[DISPLAY_SYMBOL]() : v;
    const k = kernel();
    if (k) await k.display(bundle, { raw: true, display_id: id, update });
    else console.log(String(bundle["text/plain"] ?? ""));
  };
  await show(x, false);
  return { id, update: (v) => show(v, true) };
}
