import assert from "node:assert/strict";
import { cycles, importsOf } from "../../tools/import_cycles.ts";

// lib/ has no import cycles (issue 19), and the finder finds the ones it should.
Deno.test("import cycles: the finder reports exactly the strongly connected modules", () => {
  const g = new Map([
    ["a", ["b"]],
    ["b", ["c", "d"]],
    ["c", ["a"]],
    ["d", ["e"]],
    ["e", []],
    ["f", ["f"]],
  ]);
  assert.deepEqual(cycles(g), [["a", "b", "c"], ["f"]]);
  assert.deepEqual(cycles(new Map([["x", ["y"]], ["y", []]])), []);
  const src = `import { a } from "./a.ts";\nimport type {\n  B,\n} from "../b/b.ts";\n` +
    `export * from "./c.ts";\nimport x from "npm:foo";\n`;
  assert.deepEqual(importsOf("lib/ops/x.ts", src), ["lib/ops/a.ts", "lib/b/b.ts", "lib/ops/c.ts"]);
});

Deno.test("import cycles: none in lib/", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "tools/import_cycles.ts", "lib"],
    cwd: new URL("../..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout);
  assert.equal(r.code, 0, out + new TextDecoder().decode(r.stderr));
  assert.match(out, /\d{3} modules, 0 import cycles/);
});
