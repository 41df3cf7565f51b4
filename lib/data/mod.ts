/**
 * Data: tokenizers, corpora (State of the Union addresses, Moby-Dick, .txt/.jsonl files),
 * held-out splits by unit, SHA-256 digests for manifests, and batching.
 *
 * @module
 */

export * from "./tokenizer.ts";
export * from "./tokenizer_files.ts";
export * from "./bpe.ts";
export { loadSotu, SOTU_PACKAGE, type Speech } from "./sotu.ts";
export {
  type Chapter,
  chapterDocument,
  loadMobyDick,
  MOBY_DICK_CHAPTERS,
  MOBY_DICK_PACKAGE,
} from "./moby_dick.ts";
export { type DataPackage, dataPackageDir } from "./npm_package.ts";
export * from "./split.ts";
export * from "./text_source.ts";
export * from "./instruct.ts";
export * from "./chat_template.ts";
export * from "./examples.ts";
export * from "./example_batch.ts";
export * from "./hash.ts";
export * from "./batch.ts";
