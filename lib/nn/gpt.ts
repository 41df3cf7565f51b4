/**
 * Moved to lib/models/gpt2/ (config.ts, model.ts); this path re-exports them for existing
 * importers.
 *
 * @module
 */

export * from "../models/gpt2/config.ts";
export * from "../models/gpt2/model.ts";
