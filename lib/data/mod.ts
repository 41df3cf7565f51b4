/**
 * Data: tokenizers (and later corpora and batching).
 *
 * @module
 */

export * from "./tokenizer.ts";
