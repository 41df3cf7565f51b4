/**
 * Tokenizers: the {@link Tokenizer} interface every tokenizer implements (GPT-2's and other
 * Hugging Face BPE tokenizers in `bpe.ts`) and {@link ByteTokenizer}, the byte-level one. A leaf:
 * it imports nothing (`tokenizer_files.ts` rebuilds either kind from JSON).
 *
 * @module
 */

/** The JSON description of a tokenizer, saved as `tokenizer.json` next to a model. */
export interface TokenizerJSON {
  /** Which implementation, e.g. `"byte"`. */
  type: string;
  /** Human-readable name. */
  name: string;
  /** Number of token ids (ids are `0 .. vocabSize - 1`). */
  vocabSize: number;
  /** Id of the end-of-text token. */
  eotToken: number;
  /** Implementation-specific fields. */
  [key: string]: unknown;
}

/** Turns text into token ids and back. */
export interface Tokenizer {
  /** Human-readable name, e.g. `"byte"`. */
  readonly name: string;
  /** Number of token ids (ids are `0 .. vocabSize - 1`). */
  readonly vocabSize: number;
  /** Id of the end-of-text token that separates documents. */
  readonly eotToken: number;
  /** Encodes text to token ids. Never produces the end-of-text token. */
  encode(text: string): number[];
  /** Decodes token ids to text. Throws on ids that are not integers in `[0, vocabSize)`. */
  decode(ids: ArrayLike<number>): string;
  /** A JSON description from which {@link tokenizerFromJSON} rebuilds the tokenizer. */
  toJSON(): TokenizerJSON;
}

/** Options for {@link ByteTokenizer}. */
export interface ByteTokenizerOptions {
  /**
   * Text that `decode` produces for the end-of-text token: `"<|endoftext|>"` (the default, as
   * GPT-2 does) or `""` to drop it.
   */
  eotText?: string;
}

/**
 * Byte-level tokenizer: ids 0..255 are the UTF-8 bytes of the text, id 256 is end-of-text;
 * vocabSize is 257.
 *
 * - `encode` is `TextEncoder`: a lone surrogate in the input becomes U+FFFD (bytes EF BF BD),
 *   so only well-formed strings round-trip exactly. The literal text `"<|endoftext|>"` is
 *   encoded as its 13 bytes, never as the end-of-text token.
 * - `decode` never throws on byte sequences: invalid or truncated UTF-8 becomes U+FFFD (the
 *   replacement character), following the WHATWG decoder. The end-of-text token decodes to
 *   `eotText` and splits decoding, so a multi-byte character cut by it becomes U+FFFD too.
 * - `decode` throws a RangeError for an id that is not an integer in `[0, 257)`.
 */
export class ByteTokenizer implements Tokenizer {
  /** Always `"byte"`. */
  readonly name = "byte";
  /** 256 bytes + end-of-text = 257. */
  readonly vocabSize = 257;
  /** 256. */
  readonly eotToken = 256;
  /** What `decode` produces for the end-of-text token. */
  readonly eotText: string;

  /** Creates a byte tokenizer; see {@link ByteTokenizerOptions}. */
  constructor(options: ByteTokenizerOptions = {}) {
    this.eotText = options.eotText ?? "<|endoftext|>";
  }

  /** The UTF-8 bytes of `text`, one id per byte. */
  encode(text: string): number[] {
    return Array.from(new TextEncoder().encode(text));
  }

  /** UTF-8 decodes the bytes, with U+FFFD for invalid sequences and `eotText` for id 256. */
  decode(ids: ArrayLike<number>): string {
    const decoder = new TextDecoder("utf-8", { fatal: false });
    let out = "";
    let run: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(
          `ByteTokenizer.decode: id ${id} at position ${i} is out of range [0, ${this.vocabSize})`,
        );
      }
      if (id === this.eotToken) {
        out += decoder.decode(new Uint8Array(run)) + this.eotText;
        run = [];
      } else {
        run.push(id);
      }
    }
    return out + decoder.decode(new Uint8Array(run));
  }

  /** `{type: "byte", name, vocabSize, eotToken, eotText}`. */
  toJSON(): TokenizerJSON {
    return {
      type: "byte",
      name: this.name,
      vocabSize: this.vocabSize,
      eotToken: this.eotToken,
      eotText: this.eotText,
    };
  }
}
