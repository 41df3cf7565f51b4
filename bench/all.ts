/**
 * `deno task bench`: runs every benchmark in one process tree, one after the other, so their
 * ratios come from the same run: bench/matmul.ts, bench/matmul_f16.ts, bench/qmatmul.ts,
 * bench/train_step.ts.
 * `--json` makes each print JSON (one object per benchmark, as a JSON array); any other flag is an
 * error (run a single benchmark directly for its own flags).
 */

const json = Deno.args.includes("--json");
const unknown = Deno.args.filter((a) => a !== "--json");
if (unknown.length) {
  console.error(
    `bench: unknown flag ${unknown[0]} (only --json; run bench/<name>.ts for its flags)`,
  );
  Deno.exit(2);
}
const perms = ["--allow-read", "--allow-env", "--allow-ffi=/usr/lib"];
const outputs: unknown[] = [];
for (const name of ["matmul", "matmul_f16", "qmatmul", "attention", "train_step"]) {
  const p = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...perms,
      new URL(`./${name}.ts`, import.meta.url).pathname,
      ...(json ? ["--json"] : []),
    ],
    stdout: json ? "piped" : "inherit",
    stderr: "inherit",
  });
  const r = await p.output();
  if (r.code !== 0) {
    console.error(`bench: ${name} failed (exit ${r.code})`);
    Deno.exit(1);
  }
  if (json) outputs.push(JSON.parse(new TextDecoder().decode(r.stdout)));
  else console.log("");
}
if (json) console.log(JSON.stringify(outputs, null, 2));
