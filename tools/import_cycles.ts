/**
 * Lists the import cycles among lib/'s modules (strongly connected components of the graph of
 * relative `import`/`export ... from` statements, `import type` included: a type-only cycle still
 * ties two modules' designs together). Exits 1 when there is one, so CI can keep them out.
 *
 *   deno run --allow-read tools/import_cycles.ts [root=lib]
 *
 * @module
 */

import { dirname, join, normalize, relative } from "node:path";

/** Every .ts file under `root`. */
async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(root)) {
    const p = join(root, e.name);
    if (e.isDirectory) out.push(...await files(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out.sort();
}

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*"(\.{1,2}\/[^"]+)"/g;

/** The relative modules `path` imports (resolved paths). */
export function importsOf(path: string, source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) out.push(normalize(join(dirname(path), m[1])));
  return out;
}

/** Strongly connected components with more than one module (or a self-import), Tarjan's way. */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], on = new Set<string>(), out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

if (import.meta.main) {
  const root = Deno.args[0] ?? "lib";
  const graph = new Map<string, string[]>();
  for (const f of await files(root)) graph.set(f, importsOf(f, await Deno.readTextFile(f)));
  const found = cycles(graph);
  for (const c of found) console.log(`cycle: ${c.map((p) => relative(".", p)).join(" <-> ")}`);
  console.log(
    `${graph.size} modules, ${found.length} import cycle${found.length === 1 ? "" : "s"}`,
  );
  if (found.length) Deno.exit(1);
}
