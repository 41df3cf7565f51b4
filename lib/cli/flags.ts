/**
 * Flag parsing for the small commands (`deno task merge`, `deno task eval`): `node:util`
 * parseArgs in strict mode, with every problem turned into a one-line {@link UsageError} that
 * names the flag (exit status 2), as `deno task train` does (lib/train/args.ts).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "../train/args.ts";

export { UsageError };

/** A parseArgs option: a string or a boolean flag. */
export type FlagSpec = Record<string, { type: "string" | "boolean" }>;

/**
 * Parses `argv` strictly against `options` (no positionals, no unknown flags, no repeated
 * value-less strings); returns the values by flag name. `command` names the command in errors.
 */
export function parseFlags(
  command: string,
  argv: readonly string[],
  options: FlagSpec,
): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false })
      .values as Record<string, string | boolean | undefined>;
  } catch (e) {
    const err = e as Error & { code?: string };
    const quoted = /'(-[^' ]*)/.exec(err.message)?.[1] ?? "?";
    switch (err.code) {
      case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
        throw new UsageError(`unknown flag ${quoted} (see --help)`);
      case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL": {
        const arg = /'([^']*)'/.exec(err.message)?.[1] ?? "?";
        throw new UsageError(
          `unexpected argument ${arg}: ${command} takes only flags (see --help)`,
        );
      }
      case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
        if (/does not take an argument/.test(err.message)) {
          throw new UsageError(`${quoted} takes no value`);
        }
        throw new UsageError(`${quoted}: missing value`);
      default:
        throw new UsageError(err.message.split("\n")[0]);
    }
  }
}

/** A required, non-empty path flag. */
export function requiredPath(flag: string, v: string | boolean | undefined): string {
  if (v === undefined) throw new UsageError(`--${flag} DIR is required (see --help)`);
  return nonEmpty(flag, v as string);
}

/** A non-empty string value. */
export function nonEmpty(flag: string, v: string): string {
  if (v.trim() === "") throw new UsageError(`--${flag}: expected a non-empty value`);
  return v;
}

/** A positive decimal integer (no signs, exponents or blanks). */
export function positiveInt(flag: string, v: string): number {
  const x = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(x) || x < 1) {
    throw new UsageError(`--${flag} ${v === "" ? '""' : v}: expected a positive integer`);
  }
  return x;
}

/** One of a fixed list of words. */
export function oneOf<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) {
    throw new UsageError(`--${flag} ${v}: expected one of ${allowed.join(", ")}`);
  }
  return v as T;
}
