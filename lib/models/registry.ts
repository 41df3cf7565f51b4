/**
 * Every model family loralab knows, and the lookup from a config.json to its family. A new
 * family is one folder (`lib/models/<family>/`) and one entry in {@link ARCHITECTURES}; an alias
 * (a `model_type` that is the same network) is one more name in its family's `modelTypes`.
 *
 * @module
 */

import type { Architecture, ConfigOf } from "./architecture.ts";
import { gpt2 } from "./gpt2/mod.ts";
import { llama } from "./llama/mod.ts";

/** The registered families, in lookup order. */
export const ARCHITECTURES = [gpt2, llama] as const;

/** The name of a registered family (`"gpt2"`, `"llama"`). */
export type ArchName = (typeof ARCHITECTURES)[number]["name"];

/** The config of any registered family. */
export type ModelConfig = ConfigOf<(typeof ARCHITECTURES)[number]>;

/**
 * The family of a folder saved before config.json named one (no `model_type`, no
 * `architectures`): loralab's first, GPT-2.
 */
export const LEGACY_ARCHITECTURE: Architecture = gpt2;

const all: readonly Architecture[] = ARCHITECTURES;

const byHfName = new Map<string, Architecture>();
for (const a of all) for (const n of [...a.modelTypes, ...a.hfNames]) byHfName.set(n, a);

/**
 * The family of a parsed config.json: its `model_type`, else the first of its `architectures`
 * that is registered. Throws naming what the config says and what loralab loads.
 */
export function archOf(raw: Record<string, unknown>): Architecture {
  const names = [raw.model_type, ...(Array.isArray(raw.architectures) ? raw.architectures : [])]
    .filter((x) => x !== undefined);
  for (const n of names) {
    if (typeof n === "string" && byHfName.has(n)) return byHfName.get(n)!;
  }
  const known = all.map((a) => `${a.modelTypes[0]} (${a.hfNames[0]})`);
  throw new Error(
    `unknown architecture ${
      JSON.stringify(names.length ? names : null)
    } in config.json: loralab loads ${listed(known)}`,
  );
}

/** The registered family called `name` (a model's `arch`). Throws for an unknown name. */
export function archNamed(name: string): Architecture {
  const a = all.find((x) => x.name === name);
  if (!a) throw new Error(`unknown architecture ${JSON.stringify(name)}`);
  return a;
}

/** "a", "a and b", "a, b and c". */
function listed(items: string[]): string {
  return items.length < 2
    ? items.join("")
    : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}
