/**
 * The check a command that writes a folder makes before any work: may this process read and
 * write `--out`? The deno tasks grant the folder they are given (lib/cli/launch.ts); a script
 * run directly has only the permissions its command line gave.
 *
 * @module
 */

/**
 * Null when this process may read and write `out`; else the one-line problem, naming the flag,
 * what is missing and the fix (`command` is the task and script name, e.g. `"merge"`).
 */
export function outPermissionProblem(command: string, out: string): string | null {
  for (const name of ["write", "read"] as const) {
    if (Deno.permissions.querySync({ name, path: out }).state !== "granted") {
      return `--out ${out}: this process may not ${name} there; deno task ${command} grants the ` +
        `folder it is given, or run lib/cli/${command}.ts with --allow-read and --allow-write on it`;
    }
  }
  return null;
}
