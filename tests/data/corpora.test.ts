import assert from "node:assert/strict";
import {
  chapterDocument,
  dataPackageDir,
  loadMobyDick,
  loadSotu,
  MOBY_DICK_PACKAGE,
  SOTU_PACKAGE,
} from "../../lib/data/mod.ts";

// Counts below are for the pinned package versions (0.2.3 of both); a version bump must update
// them on purpose.

Deno.test("loadSotu: 233 addresses, 1790–2021, 43 presidents, metadata per file", async () => {
  const speeches = await loadSotu();
  assert.equal(speeches.length, 233);
  assert.equal(speeches[0].year, 1790);
  assert.equal(speeches.at(-1)!.year, 2021);
  assert.equal(speeches.at(-1)!.president, "Joseph R Biden");
  assert.equal(new Set(speeches.map((s) => s.id)).size, 233, "ids are unique");
  assert.equal(new Set(speeches.map((s) => s.president)).size, 43);
  const total = speeches.reduce((n, s) => n + s.text.length, 0);
  assert.equal(total, 10_759_787, "≈10.76 M characters (UTF-16 code units, trimmed)");
  for (let i = 1; i < speeches.length; i++) {
    assert.ok(speeches[i - 1].year <= speeches[i].year, "sorted by year");
  }
  const count = (name: string) => speeches.filter((s) => s.president === name).length;
  assert.equal(count("George Washington"), 7);
  assert.equal(count("Abraham Lincoln"), 4);
  assert.equal(count("Franklin D Roosevelt"), 12);
  assert.equal(count("Barack Obama"), 8);

  const washington = speeches[0];
  assert.equal(washington.president, "George Washington");
  assert.equal(washington.party, undefined, "the package's party 'none' is left out");
  const lincoln = speeches.find((s) => s.year === 1861)!;
  assert.equal(lincoln.id, "1861_abraham_lincoln_r");
  assert.equal(lincoln.party, "Republican");
  assert.ok(lincoln.text.startsWith("Fellow-Citizens of the Senate and House of Representatives:"));
  assert.deepEqual(
    speeches.filter((s) => s.year === 1953).map((s) => s.president),
    ["Dwight D Eisenhower", "Harry S Truman"],
    "1953 has two addresses, ordered by file name",
  );
  for (const s of speeches) {
    assert.ok(s.text.length > 1000 && s.text === s.text.trim(), s.id);
  }
});

Deno.test("loadMobyDick: 135 chapters and the epilogue, with titles and bodies", async () => {
  const chapters = await loadMobyDick();
  assert.equal(chapters.length, 136);
  assert.deepEqual(chapters.map((c) => c.index), Array.from({ length: 136 }, (_, i) => i + 1));
  assert.equal(chapters[0].title, "Loomings.");
  assert.equal(chapters[0].heading, "CHAPTER 1. Loomings.");
  assert.ok(chapters[0].text.startsWith("Call me Ishmael. Some years ago"));
  assert.equal(chapters[1].title, "The Carpet-Bag.");
  assert.equal(chapters[134].title, "The Chase.—Third Day.");
  const epilogue = chapters[135];
  assert.equal(epilogue.title, '"AND I ONLY AM ESCAPED ALONE TO TELL THEE" Job.');
  assert.equal(epilogue.heading, 'Epilogue "AND I ONLY AM ESCAPED ALONE TO TELL THEE" Job.');
  assert.ok(epilogue.text.startsWith("The drama's done."), "heading moved out of the body");
  assert.ok(epilogue.text.endsWith("found another orphan."));
  const total = chapters.reduce((n, c) => n + c.text.length, 0);
  assert.equal(total, 1_186_441);
  for (const c of chapters) assert.ok(c.text.length > 100 && c.text === c.text.trim(), c.heading);
  assert.ok(chapterDocument(chapters[0]).startsWith("CHAPTER 1. Loomings.\n\nCall me Ishmael."));
});

Deno.test("dataPackageDir: resolves inside the repository's node_modules", async () => {
  for (const pkg of [SOTU_PACKAGE, MOBY_DICK_PACKAGE]) {
    const dir = await dataPackageDir(pkg);
    assert.equal(dir.protocol, "file:");
    assert.ok(dir.pathname.includes("/node_modules/"), dir.pathname);
    assert.ok(dir.pathname.endsWith(`${pkg.name}/`), dir.pathname);
  }
});

Deno.test("dataPackageDir: clear errors for an unmapped package, a version mismatch", async () => {
  await assert.rejects(
    () => dataPackageDir({ name: "@loralab/no-such-data", version: "1.0.0" }),
    (err: Error) => {
      assert.match(err.message, /@loralab\/no-such-data@1\.0\.0 is not available/);
      assert.match(err.message, /npx -y deno@2\.9\.6 install/);
      assert.match(err.message, /"npm:@loralab\/no-such-data@1\.0\.0"/);
      return true;
    },
  );
  await assert.rejects(
    () => dataPackageDir({ name: SOTU_PACKAGE.name, version: "9.9.9" }),
    /found version 0\.2\.3, expected 9\.9\.9/,
  );
});
