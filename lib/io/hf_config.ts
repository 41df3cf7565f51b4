/**
 * A Hugging Face folder's config.json: reading it, the fields every family shares
 * (`eos_token_id`), the family it names (lib/models/registry.ts answers), and the check that
 * the weight files can hold the parameters it describes.
 *
 * @module
 */

import { type ArchName, archOf } from "../models/registry.ts";
import { readJsonChecked } from "./read_file.ts";

/** Architectures this loader knows: the names of the registered families. */
export type HfArch = ArchName;

/** The architecture of a parsed config.json (`model_type`, else `architectures[0]`). */
export function hfArch(raw: Record<string, unknown>): HfArch {
  return archOf(raw).name as HfArch;
}

/** Reads config.json of `dir`. */
export async function readHfConfig(dir: string): Promise<Record<string, unknown>> {
  let j: unknown;
  try {
    j = await readJsonChecked(`${dir}/config.json`);
  } catch (e) {
    throw new Error(`cannot read ${dir}/config.json: ${(e as Error).message}`);
  }
  if (typeof j !== "object" || j === null || Array.isArray(j)) {
    throw new Error(`${dir}/config.json is not a JSON object`);
  }
  return j as Record<string, unknown>;
}

/** config.json's `eos_token_id` (the first one if a list), if it is an integer. */
export function eosTokenId(raw: Record<string, unknown>): number | undefined {
  const eos = Array.isArray(raw.eos_token_id) ? raw.eos_token_id[0] : raw.eos_token_id;
  return Number.isInteger(eos) ? eos as number : undefined;
}

/**
 * Throws unless the weight files can hold the parameters config.json describes, at half a byte
 * each (4-bit, the smallest storage a checkpoint may use). Checked before anything is built or
 * allocated, so a config with `n_layer: 1000000` or `vocab_size: 2000000` is one clear error
 * instead of gigabytes of allocation.
 */
export function checkConfigFitsFiles(
  params: number,
  fileBytes: number,
  dims: Record<string, number>,
  where: string,
): void {
  if (params / 2 <= fileBytes) return;
  const fields = Object.entries(dims).map(([k, v]) => `${k} ${v}`).join(", ");
  throw new Error(
    `${where}: config.json (${fields}) describes ${params.toExponential(3)} parameters, ` +
      `at least ${fmtBytes(params / 2)}, but the weight files hold only ${fmtBytes(fileBytes)}`,
  );
}

function fmtBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(2)} MB`;
}
