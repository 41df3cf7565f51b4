/**
 * Executes every notebook in notebooks/ headless (tools/execute_notebook.py: nbconvert's
 * executor) with the repository's Deno kernel
 * (kernels/deno via JUPYTER_PATH, running this very Deno binary through LORALAB_DENO), asserts
 * that no cell raised, and checks the numbers each chapter promises in its printed output.
 * Also checks that the committed notebooks were saved executed (`deno task notebooks`).
 */

import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const JUPYTER = "/usr/bin/jupyter";
const APT = "apt-get update && apt-get install -y --no-install-recommends " +
  "jupyter-nbconvert jupyter-client jupyter-notebook";

/** Substrings each chapter's stdout must contain (numbers a course relies on). */
const EXPECTED: Record<string, string[]> = {
  "01_rank1_decomposition.ipynb": [
    "25 entries from 10 numbers",
    "rank(u·vᵀ) = 1",
    "r=1: A [1,5], B [5,1] -> 10 trainable numbers; at init max|ΔW| = 0; rank(ΔW) = 1",
    "r=2: A [2,5], B [5,2] -> 20 trainable numbers; at init max|ΔW| = 0; rank(ΔW) = 2",
  ],
  "02_parameter_math.ipynb": [
    "16,777,216 weights",
    "67,108,864 bytes as f32",
    "= 65,536 trainable parameters",
    "fraction of W: 0.39%",
    "NF4 + double quant: 8,654,852 bytes = 8.65 MB, 4.127 bits per weight",
    "GPT-2 small: 124,439,808 parameters",
    "LoRA r=8 on c_attn: 294,912 (0.237%)",
  ],
  "03_precision_and_quantization.ipynb": [
    "3.14159 -> f32 3.141590118408203, f16 3.140625, bf16 3.140625",
    "with double quantization: 4.127 (formula 4.127)",
    "NF4, block 64        bits/weight  4.500",
    "NF4 + DQ             bits/weight  4.127",
  ],
};

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  ename?: string;
  evalue?: string;
  data?: Record<string, unknown>;
}
interface Cell {
  cell_type: string;
  execution_count?: number | null;
  outputs?: Output[];
}
interface Notebook {
  cells: Cell[];
}

const join = (t: string | string[] | undefined) => Array.isArray(t) ? t.join("") : t ?? "";

function errors(nb: Notebook): string[] {
  return nb.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.output_type === "error")
    .map((o) => `${o.ename}: ${o.evalue}`);
}

function stdout(nb: Notebook): string {
  return nb.cells.flatMap((c) => c.outputs ?? [])
    .filter((o) => o.output_type === "stream" && o.name === "stdout")
    .map((o) => join(o.text)).join("");
}

function jupyterPresent(): boolean {
  try {
    return Deno.statSync(JUPYTER).isFile;
  } catch {
    return false;
  }
}

const notebooks = [...Deno.readDirSync(`${ROOT}/notebooks`)]
  .filter((e) => e.isFile && e.name.endsWith(".ipynb")).map((e) => e.name).sort();

Deno.test("notebooks: every chapter with expectations exists", () => {
  for (const name of Object.keys(EXPECTED)) assert.ok(notebooks.includes(name), `missing ${name}`);
});

for (const name of notebooks) {
  Deno.test(`notebooks: ${name} is committed executed, without errors`, () => {
    const nb: Notebook = JSON.parse(Deno.readTextFileSync(`${ROOT}/notebooks/${name}`));
    const code = nb.cells.filter((c) => c.cell_type === "code");
    const unrun = code.filter((c) => c.execution_count == null).length;
    assert.deepEqual(unrun, 0, `${unrun} code cells never ran: run \`deno task notebooks\``);
    assert.deepEqual(errors(nb), []);
  });

  Deno.test(`notebooks: ${name} runs headless top to bottom`, async () => {
    if (!jupyterPresent()) {
      throw new Error(`Jupyter is missing (${JUPYTER}); run as root: ${APT} (tools/setup.sh does)`);
    }
    const out = await Deno.makeTempDir({ prefix: "loralab-nb-" });
    try {
      const t0 = performance.now();
      // nbconvert's executor, keeping outputs published just after "idle" (see the script).
      const r = await new Deno.Command("/usr/bin/python3", {
        args: [
          `${ROOT}/tools/execute_notebook.py`,
          "--timeout",
          "300",
          "--output-dir",
          out,
          `${ROOT}/notebooks/${name}`,
        ],
        cwd: ROOT,
        env: {
          JUPYTER_PATH: ROOT,
          LORALAB_DENO: Deno.execPath(), // the kernel runs this very Deno
          XDG_RUNTIME_DIR: "/tmp/loralab-runtime",
          PYDEVD_DISABLE_FILE_VALIDATION: "1",
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const log = new TextDecoder().decode(r.stderr);
      assert.ok(r.success, `executing failed on ${name}:\n${log.slice(-4000)}`);
      const nb: Notebook = JSON.parse(await Deno.readTextFile(`${out}/${name}`));
      assert.deepEqual(errors(nb), [], `cells raised in ${name}`);
      const text = stdout(nb);
      for (const s of EXPECTED[name] ?? []) {
        assert.ok(text.includes(s), `${name}: stdout lacks ${JSON.stringify(s)}:\n${text}`);
      }
      console.log(`${name}: executed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  });
}
