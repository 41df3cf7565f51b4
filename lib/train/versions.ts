/**
 * Version facts for run manifests.
 *
 * @module
 */

/** The git commit of the working tree (with `-dirty` when it has changes), or null. */
export async function gitCommit(): Promise<string | null> {
  try {
    const run = (args: string[]) =>
      new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output();
    const head = await run(["rev-parse", "HEAD"]);
    if (head.code !== 0) return null;
    const sha = new TextDecoder().decode(head.stdout).trim();
    const st = await run(["status", "--porcelain", "--untracked-files=no"]);
    const dirty = new TextDecoder().decode(st.stdout).trim().length > 0;
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return null; // no git, or no --allow-run=git
  }
}
