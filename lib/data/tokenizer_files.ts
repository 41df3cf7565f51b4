/**
 * Tokenizers from their saved JSON: {@link tokenizerFromJSON} knows the byte-level tokenizer
 * (`tokenizer.ts`) and Hugging Face tokenizers (`bpe.ts`), so neither of those imports the other;
 * {@link loadFolderTokenizer} reads a model folder's tokenizer, whichever kind it is.
 *
 * @module
 */

import { pathExists, readJsonChecked } from "../io/read_file.ts";
import { HfTokenizer, type HfTokenizerFile, loadHfTokenizer } from "./bpe.ts";
import { ByteTokenizer, type Tokenizer, type TokenizerJSON } from "./tokenizer.ts";

/**
 * Rebuilds a tokenizer from its {@link TokenizerJSON} (e.g. a parsed `tokenizer.json`).
 * Knows `type: "byte"` and `type: "hf"` (a Hugging Face tokenizer, see lib/data/bpe.ts); throws
 * for any other type or for fields that do not match.
 */
export function tokenizerFromJSON(json: TokenizerJSON): Tokenizer {
  if (json.type === "hf") {
    const tok = new HfTokenizer(json.tokenizer as HfTokenizerFile, {
      name: json.name,
      eotToken: json.eotToken,
      config: json.config as Record<string, unknown> | undefined,
    });
    if (json.vocabSize !== tok.vocabSize) {
      throw new Error(
        `tokenizerFromJSON: hf tokenizer has ${tok.vocabSize} tokens, the JSON says ${json.vocabSize}`,
      );
    }
    return tok;
  }
  if (json.type === "byte") {
    if (json.eotText !== undefined && typeof json.eotText !== "string") {
      throw new Error("tokenizerFromJSON: eotText must be a string");
    }
    const tok = new ByteTokenizer({ eotText: json.eotText as string | undefined });
    if (json.vocabSize !== tok.vocabSize || json.eotToken !== tok.eotToken) {
      throw new Error(
        `tokenizerFromJSON: byte tokenizer must have vocabSize ${tok.vocabSize} and eotToken` +
          ` ${tok.eotToken}, got ${json.vocabSize} and ${json.eotToken}`,
      );
    }
    return tok;
  }
  throw new Error(`tokenizerFromJSON: unknown tokenizer type ${JSON.stringify(json.type)}`);
}

/**
 * The tokenizer of a model folder: loralab's own `tokenizer.json` (with a `type` field, see
 * tokenizerFromJSON), else Hugging Face's (`tokenizer.json`, or `vocab.json` + `merges.txt`).
 */
export async function loadFolderTokenizer(dir: string, eosTokenId?: number): Promise<Tokenizer> {
  if (await pathExists(`${dir}/tokenizer.json`)) {
    const j = await readJsonChecked(`${dir}/tokenizer.json`);
    if (typeof (j as { type?: unknown })?.type === "string") {
      return tokenizerFromJSON(j as TokenizerJSON);
    }
  }
  return await loadHfTokenizer(dir, eosTokenId);
}
