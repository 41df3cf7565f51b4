/**
 * Hugging Face tokenizers (GPT-2's byte-level BPE, Llama's SentencePiece-style BPE with byte
 * fallback, and whatever else a `tokenizer.json` describes) behind loralab's {@link Tokenizer}
 * interface. The tokenization itself is `@huggingface/tokenizers` (Hugging Face's pure
 * TypeScript port of their Rust `tokenizers`, zero dependencies); this file adds loading from a
 * model folder (`tokenizer.json`, or GPT-2's `vocab.json` + `merges.txt`), the end-of-text
 * token, id checks, and a JSON form that {@link tokenizerFromJSON} rebuilds.
 *
 * @module
 */

import { Tokenizer as HfImpl } from "@huggingface/tokenizers";
import type { Tokenizer, TokenizerJSON } from "./tokenizer.ts";
import { MAX_JSON_BYTES, pathExists, readJsonChecked, readTextChecked } from "../io/read_file.ts";

/** A parsed Hugging Face `tokenizer.json` (the fields loralab looks at; the rest pass through). */
export interface HfTokenizerFile {
  /** The model: `{type: "BPE", vocab, merges, …}` etc. */
  model: { type?: string; vocab?: unknown; merges?: unknown; [k: string]: unknown };
  /** Special and added tokens. */
  added_tokens?: { id: number; content: string; special?: boolean }[];
  /** Other components (normalizer, pre_tokenizer, decoder, post_processor, …). */
  [key: string]: unknown;
}

/** Options of {@link HfTokenizer}. */
export interface HfTokenizerOptions {
  /** Human-readable name. Default from the model type, e.g. `"hf-bpe"`. */
  name?: string;
  /**
   * Id of the end-of-text token. Default: the first of `<|endoftext|>`, `</s>`,
   * `<|end_of_text|>`, `<eos>` that the vocabulary has.
   */
  eotToken?: number;
  /** The folder's `tokenizer_config.json`, if any (passed to the implementation). */
  config?: Record<string, unknown>;
}

const EOT_NAMES = ["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"];

/**
 * A Hugging Face tokenizer. `encode` adds no special tokens (no BOS), matching
 * `tokenizer.encode(text, add_special_tokens=False)`; note that, as there, the literal text of
 * an added token (e.g. `"<|endoftext|>"`) is matched as that token. `decode` keeps special
 * tokens and does no clean-up of spaces, so `decode(encode(s)) === s` for the usual tokenizers.
 */
export class HfTokenizer implements Tokenizer {
  /** Human-readable name. */
  readonly name: string;
  /** 1 + the largest id of the vocabulary and the added tokens. */
  readonly vocabSize: number;
  /** Id of the end-of-text token. */
  readonly eotToken: number;
  readonly #impl: HfImpl;

  /** Builds the tokenizer from a parsed `tokenizer.json`. */
  constructor(readonly file: HfTokenizerFile, readonly options: HfTokenizerOptions = {}) {
    if (typeof file !== "object" || file === null || typeof file.model !== "object") {
      throw new Error("HfTokenizer: not a Hugging Face tokenizer.json (no `model` object)");
    }
    try {
      this.#impl = new HfImpl(file, options.config ?? {});
    } catch (e) {
      throw new Error(`HfTokenizer: cannot build the tokenizer: ${(e as Error).message}`);
    }
    let maxId = -1;
    for (const id of this.#impl.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.name = options.name ?? `hf-${String(file.model.type ?? "tokenizer").toLowerCase()}`;
    let eot = options.eotToken;
    if (eot === undefined) {
      for (const n of EOT_NAMES) {
        eot = this.#impl.token_to_id(n);
        if (eot !== undefined) break;
      }
    }
    if (eot === undefined || !Number.isInteger(eot) || eot < 0 || eot >= this.vocabSize) {
      throw new Error(
        `HfTokenizer: no end-of-text token (none of ${EOT_NAMES.join(", ")} is in the ` +
          `vocabulary, and no eos_token_id was given)`,
      );
    }
    this.eotToken = eot;
  }

  /**
   * GPT-2's tokenizer from `vocab.json` (token → id) and `merges.txt` (one `a b` pair per line,
   * an optional `#version` first line): byte-level pre-tokenizer and decoder, BPE model, and
   * `<|endoftext|>` as a special token when the vocabulary has it.
   */
  static fromVocabMerges(
    vocab: Record<string, number>,
    merges: string | string[],
    options: HfTokenizerOptions = {},
  ): HfTokenizer {
    if (typeof vocab !== "object" || vocab === null || Array.isArray(vocab)) {
      throw new Error("HfTokenizer: vocab.json must be an object of token → id");
    }
    for (const [k, v] of Object.entries(vocab)) {
      if (!Number.isInteger(v) || v < 0) {
        throw new Error(`HfTokenizer: vocab.json: id of ${JSON.stringify(k)} is ${v}`);
      }
    }
    const lines = typeof merges === "string"
      ? merges.split("\n").filter((l, i) => l.trim() !== "" && !(i === 0 && l.startsWith("#")))
      : merges;
    lines.forEach((l, i) => {
      if (l.split(" ").length !== 2) {
        throw new Error(`HfTokenizer: merges.txt line ${i + 1} is not "a b": ${JSON.stringify(l)}`);
      }
    });
    const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
    const eot = vocab["<|endoftext|>"];
    const file: HfTokenizerFile = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: eot === undefined ? [] : [{
        id: eot,
        content: "<|endoftext|>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      } as { id: number; content: string; special: boolean }],
      normalizer: null,
      pre_tokenizer: { type: "ByteLevel", ...byteLevel },
      post_processor: { type: "ByteLevel", ...byteLevel, trim_offsets: false },
      decoder: { type: "ByteLevel", ...byteLevel },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: "",
        end_of_word_suffix: "",
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: lines,
      },
    };
    return new HfTokenizer(file, { name: "gpt2-bpe", ...options });
  }

  /** Token ids of `text`, without special tokens added. */
  encode(text: string): number[] {
    return this.#impl.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; throws a RangeError for an id outside `[0, vocabSize)`. */
  decode(ids: ArrayLike<number>): string {
    const list: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(
          `HfTokenizer.decode: id ${id} at position ${i} is out of range [0, ${this.vocabSize})`,
        );
      }
      list.push(id);
    }
    if (list.length === 0) return "";
    return this.#impl.decode(list, {
      skip_special_tokens: false,
      clean_up_tokenization_spaces: false,
    });
  }

  /** The token string of an id (e.g. `"Ġworld"`), or undefined. */
  idToToken(id: number): string | undefined {
    return this.#impl.id_to_token(id);
  }

  /** The id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#impl.token_to_id(token);
  }

  /** `{type: "hf", name, vocabSize, eotToken, tokenizer: <tokenizer.json>, config}`. */
  toJSON(): TokenizerJSON {
    return {
      type: "hf",
      name: this.name,
      vocabSize: this.vocabSize,
      eotToken: this.eotToken,
      tokenizer: this.file,
      config: this.options.config ?? {},
    };
  }
}

/** Whether a parsed `tokenizer.json` is Hugging Face's format (not loralab's own). */
export function isHfTokenizerFile(json: unknown): json is HfTokenizerFile {
  return typeof json === "object" && json !== null &&
    typeof (json as Record<string, unknown>).model === "object" &&
    !("type" in (json as Record<string, unknown>));
}

/**
 * The tokenizer of a Hugging Face model folder: `tokenizer.json` if present, else GPT-2's
 * `vocab.json` + `merges.txt`; `tokenizer_config.json` is read when present. `eotToken`
 * (e.g. config.json's `eos_token_id`) overrides the end-of-text guess.
 */
export async function loadHfTokenizer(dir: string, eotToken?: number): Promise<HfTokenizer> {
  const config = await pathExists(`${dir}/tokenizer_config.json`)
    ? (await readJsonChecked(`${dir}/tokenizer_config.json`)) as Record<string, unknown>
    : undefined;
  if (await pathExists(`${dir}/tokenizer.json`)) {
    const json = await readJsonChecked(`${dir}/tokenizer.json`);
    if (!isHfTokenizerFile(json)) {
      throw new Error(`${dir}/tokenizer.json is not a Hugging Face tokenizer (no "model")`);
    }
    return new HfTokenizer(json, { eotToken, config });
  }
  if (await pathExists(`${dir}/vocab.json`) && await pathExists(`${dir}/merges.txt`)) {
    const vocab = (await readJsonChecked(`${dir}/vocab.json`)) as Record<string, number>;
    const merges = await readTextChecked(`${dir}/merges.txt`, MAX_JSON_BYTES);
    return HfTokenizer.fromVocabMerges(vocab, merges, { eotToken, config });
  }
  throw new Error(
    `${dir} has no tokenizer: expected tokenizer.json, or vocab.json and merges.txt`,
  );
}
