/**
 * The launcher behind `deno task train|generate|eval|merge|quantize|pretrain`: user data and models live
 * anywhere on disk, yet each command runs with least privilege. The launcher reads the command's
 * path flags (`--data`, `--val`, `--base`, `--model`, `--adapter`, `--resume`, `--out`), and
 * starts the command in a second Deno process that may read the repository and those paths (and
 * their real paths, links resolved) and write only where the command writes (`--out`, `--resume`,
 * or its default folder), with no network.
 *
 * Relative paths are taken from the folder `deno task` was started in (`INIT_CWD`), as a shell
 * user expects; the command itself runs in the repository. The exit code is the command's.
 *
 * Usage (deno.json): `deno run --allow-read --allow-env --allow-run lib/cli/launch.ts train ARGS`
 *
 * @module
 */

import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** How one command is launched: its script, path flags and fixed permissions. */
export interface CommandSpec {
  /** Script under lib/cli/. */
  script: string;
  /** Flags whose values are paths the command reads. */
  read: readonly string[];
  /** Flags whose values are paths the command writes (and reads). */
  write: readonly string[];
  /** Where it writes when none of the `write` flags is given (repository-relative). */
  defaultWrite: readonly string[];
  /** Programs it may run (`git`, for the commit in run manifests). */
  run: readonly string[];
  /** Values of read flags that name builtin data, not files. */
  builtins: readonly string[];
}

/** The commands the launcher knows. */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  train: {
    script: "train.ts",
    read: ["data", "val", "base"],
    write: ["out", "resume"],
    defaultWrite: ["runs"],
    run: ["git"],
    builtins: ["moby-dick", "sotu"],
  },
  generate: {
    script: "generate.ts",
    read: ["model", "base", "adapter"],
    write: [],
    defaultWrite: [],
    run: [],
    builtins: [],
  },
  quantize: {
    script: "quantize.ts",
    read: ["model"],
    write: ["out"],
    defaultWrite: [],
    run: [],
    builtins: [],
  },
  eval: {
    script: "eval.ts",
    read: ["base", "adapter", "data"],
    write: [],
    defaultWrite: [],
    run: [],
    builtins: ["moby-dick", "sotu"],
  },
  merge: {
    script: "merge.ts",
    read: ["base", "adapter"],
    write: ["out"],
    defaultWrite: [],
    run: [],
    builtins: [],
  },
  pretrain: {
    script: "pretrain.ts",
    read: [],
    write: ["out"],
    defaultWrite: ["data/base"],
    run: ["git"],
    builtins: [],
  },
};

/** The child process to start: `deno` arguments after the executable. */
export interface Launch {
  /** `run`, permission flags, the script, the command's arguments (paths made absolute). */
  args: string[];
  /** Paths the command may read. */
  read: string[];
  /** Paths the command may write. */
  write: string[];
}

/** A bad launch: unknown command, or a path Deno's permission lists cannot hold. */
export class LaunchError extends Error {
  /** Creates the error with a one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "LaunchError";
  }
}

/** `--name value` and `--name=value` occurrences of the flags in `names`, in order. */
function flagValues(
  argv: readonly string[],
  names: readonly string[],
): { flag: string; value: string; index: number; inline: boolean }[] {
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") break;
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (!names.includes(name)) continue;
    if (eq >= 0) out.push({ flag: name, value: a.slice(eq + 1), index: i, inline: true });
    else if (i + 1 < argv.length) {
      out.push({ flag: name, value: argv[i + 1], index: i + 1, inline: false });
      i++;
    }
  }
  return out;
}

/** The real path of `p` when it exists (links resolved), else null. */
function realPathOrNull(p: string): string | null {
  try {
    return Deno.realPathSync(p);
  } catch {
    return null;
  }
}

/**
 * Plans the child process of `command` with `argv`: the repository at `repo`, relative paths
 * taken from `cwd` (where the user typed the command). Throws a {@link LaunchError} for an
 * unknown command or a path holding a comma (Deno's permission lists are comma-separated).
 */
export function planLaunch(
  command: string,
  argv: readonly string[],
  repo: string,
  cwd: string,
): Launch {
  const spec = COMMANDS[command];
  if (!spec) {
    throw new LaunchError(
      `unknown command ${command}; expected one of ${Object.keys(COMMANDS).join(", ")}`,
    );
  }
  const args = [...argv];
  const read = new Set([repo]), write = new Set<string>();
  let wrote = false;
  for (const v of flagValues(argv, [...spec.read, ...spec.write])) {
    if (v.value === "" || spec.builtins.includes(v.value)) continue;
    if (v.value.includes(",")) {
      throw new LaunchError(
        `--${v.flag} ${v.value}: paths with a comma cannot be granted to the command ` +
          "(Deno's permission lists are comma-separated); rename or link the folder",
      );
    }
    const abs = isAbsolute(v.value) ? v.value : resolve(cwd, v.value);
    args[v.index] = v.inline ? `--${v.flag}=${abs}` : abs;
    const paths = [abs, realPathOrNull(abs)].filter((p): p is string => p !== null);
    for (const p of paths) read.add(p);
    if (spec.write.includes(v.flag)) {
      for (const p of paths) write.add(p);
      wrote = true;
    }
  }
  if (!wrote) { for (const d of spec.defaultWrite) write.add(join(repo, d)); }
  for (const w of write) read.add(w);
  const perms = [
    `--allow-read=${[...read].join(",")}`,
    ...(write.size ? [`--allow-write=${[...write].join(",")}`] : []),
    "--allow-env",
    "--allow-ffi=/usr/lib",
    "--allow-sys=systemMemoryInfo",
    ...(spec.run.length ? [`--allow-run=${spec.run.join(",")}`] : []),
  ];
  return {
    args: ["run", ...perms, join(repo, "lib", "cli", spec.script), ...args],
    read: [...read],
    write: [...write],
  };
}

if (import.meta.main) {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
  const [command, ...argv] = Deno.args;
  let plan: Launch;
  try {
    plan = planLaunch(command ?? "", argv, repo, Deno.env.get("INIT_CWD") ?? Deno.cwd());
  } catch (e) {
    console.error(`${command ?? "launch"}: ${(e as Error).message}`);
    Deno.exit(2);
  }
  // Ctrl-C reaches the command too (same process group): it checkpoints and exits 130; the
  // launcher waits for it instead of dying first.
  Deno.addSignalListener("SIGINT", () => {});
  const child = new Deno.Command(Deno.execPath(), {
    args: plan.args,
    cwd: repo,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // A command killed by a signal reports 128 + its number, as a shell does.
  Deno.exit((await child.status).code);
}
