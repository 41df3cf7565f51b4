/**
 * One-screen summary of issue 8's GPU goals from the JSON files bench/gpu.sh writes into one
 * folder (each may be missing: its goal then says so): `matmul.json` (bench/matmul.ts),
 * `qmatmul.json` (bench/qmatmul.ts --copy --gpt2-m …), `torch.json` (bench/torch_compare.py) and
 * `train*.json` (bench/train_step.ts --parts gpt2, one file per method) and `attention.json`
 * (bench/attention.ts: rows / tiled and composed / tiled time, above 1 when the tiled kernels are
 * faster; and issue 15's `auto` rows: the selected path vs the fastest). Every ratio compares rows
 * of the same run.
 *
 * Usage: `deno run --allow-read bench/gpu_summary.ts OUT_DIR` (`--json` prints the ratios as JSON).
 */

// deno-lint-ignore no-explicit-any
type Json = any;

const args = Deno.args.filter((a) => a !== "--json");
const asJson = Deno.args.includes("--json");
if (args.length !== 1) {
  console.error("usage: gpu_summary.ts OUT_DIR [--json]");
  Deno.exit(2);
}
const dir = args[0];

/** The parsed JSON file, or null (with the reason printed) when missing or not JSON. */
function load(name: string): Json | null {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/${name}`));
  } catch (e) {
    console.log(
      `(${name}: ${e instanceof Deno.errors.NotFound ? "missing" : (e as Error).message})`,
    );
    return null;
  }
}
// The kernels' tests on this adapter (gpu.sh's first part): their result line, stripped of colour.
try {
  const esc = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"); // terminal colours
  const log = Deno.readTextFileSync(`${dir}/twins.txt`).replace(esc, "");
  const res = log.split("\n").filter((l) => /\d+ passed \| \d+ failed/.test(l)).pop();
  const adapter = log.match(/loralab: backend webgpu \((.*)\)\s*$/m)?.[1];
  console.log(`kernel tests: ${res?.trim() ?? "no result line"}${adapter ? ` on ${adapter}` : ""}`);
} catch {
  console.log("(twins.txt: missing)");
}
const mm = load("matmul.json"), qm = load("qmatmul.json"), th = load("torch.json");
const trainFiles = [...Deno.readDirSync(dir)].map((e) => e.name)
  .filter((n) => /^train.*\.json$/.test(n)).sort();
const tr = { rows: trainFiles.flatMap((n) => load(n)?.rows ?? []) };
if (!trainFiles.length) console.log("(train*.json: missing)");
const rowsOf = (j: Json | null): Json[] => (Array.isArray(j?.rows) ? j.rows : []);
const isGpu = (r: Json) => String(r.backend ?? "").startsWith("webgpu");
const f = (x: number | undefined, d = 2) => (x === undefined || !isFinite(x) ? "—" : x.toFixed(d));
/** GFLOP/s as "x TFLOP/s" from 1000 up, else "x GFLOP/s". */
const flops = (g: number | undefined) =>
  g === undefined ? "—" : g >= 1000 ? `${f(g / 1e3)} TFLOP/s` : `${f(g, g >= 10 ? 1 : 3)} GFLOP/s`;
/** GB/s with 3 significant-ish digits. */
const gbs = (g: number | undefined) => (g === undefined ? "—" : `${f(g, g >= 10 ? 1 : 3)} GB/s`);
const verdict = (ratio: number | undefined, goal: number) =>
  ratio === undefined || !isFinite(ratio) ? "no data" : ratio >= goal ? "MET" : "not met";

const out: Record<string, unknown>[] = [];
const line = (
  goal: string,
  what: string,
  ours: string,
  ref: string,
  ratio?: number,
  g?: number,
) => {
  out.push({ goal, what, ours, ref, ratio, target: g });
  console.log(
    `${goal.padEnd(3)} ${what.padEnd(38)} ${ours.padStart(16)} ${ref.padStart(16)} ${
      f(ratio).padStart(6)
    } ${g === undefined ? "" : `(≥ ${g}: ${verdict(ratio, g)})`}`,
  );
};

const adapter = rowsOf(qm).find(isGpu)?.adapter ?? rowsOf(tr).find(isGpu)?.adapter ??
  rowsOf(mm).find(isGpu)?.adapter ?? "unknown";
console.log(`adapter: ${adapter}; torch ${th?.torch ?? "—"} on ${th?.gpu ?? th?.device ?? "—"}`);
if (th && th.device === "cpu") {
  console.log("NOTE: PyTorch ran on the CPU: its ratios are not goals");
}
console.log(
  `${"#".padEnd(3)} ${"what".padEnd(38)} ${"ours".padStart(16)} ${"reference".padStart(16)} ${
    "ratio".padStart(6)
  }`,
);

// Goal 1: f32 matmul vs PyTorch fp32 (TF32 off), at 4096² (or the largest common n) and shapes.
const tm = rowsOf(th).filter((r) => r.n !== undefined);
const ourSquare = [
  ...rowsOf(mm).filter(isGpu).map((r) => ({
    n: r.n,
    gflops: r.gflops,
    via: r.variant ?? r.backend,
  })),
  ...rowsOf(qm).filter((r) =>
    isGpu(r) && r.format === "f32" && r.M === r.N && r.N === r.K && r.M > 1
  )
    .map((r) => ({ n: r.M, gflops: r.gflops, via: "x·Wᵀ (qmatmul.ts)" })),
];
const common = tm.map((r) => r.n).filter((n) => ourSquare.some((o) => o.n === n));
const n1 = common.includes(4096) ? 4096 : Math.max(...common);
if (common.length) {
  const best = ourSquare.filter((o) => o.n === n1).sort((a, b) => b.gflops - a.gflops)[0];
  const ref = tm.find((r) => r.n === n1)!;
  line(
    "1",
    `f32 matmul ${n1}² (best: ${best.via})`,
    flops(best.gflops),
    flops(ref.gflops),
    best.gflops / ref.gflops,
    0.5,
  );
} else line("1", "f32 matmul n² (no common n)", "—", "—", undefined, 0.5);
const qgpu = rowsOf(qm).filter(isGpu);
for (
  const r of qgpu.filter((r) => r.format === "f32" && r.M > 1 && String(r.shape).startsWith("gpt2"))
) {
  const ref = rowsOf(th).find((t) => t.shape === r.shape && t.M === r.M);
  line(
    "1",
    `f32 ${r.shape} M=${r.M}`,
    flops(r.gflops),
    ref ? flops(ref.gflops) : "—",
    ref ? r.gflops / ref.gflops : undefined,
    0.5,
  );
}

// Goal 3: NF4 vs our f32 at training shapes; batch-1 NF4 vs the copy ceiling. Rows of
// `--code-table both` say where the 4-bit code table was.
// deno-lint-ignore no-explicit-any
const tableTag = (r: any) => (r.code_table ? ` (table ${r.code_table})` : "");
for (const r of qgpu.filter((r) => r.format.startsWith("nf4") && r.M > 1)) {
  line(
    "3",
    `${r.format}${tableTag(r)} ${r.shape} ${r.M}x${r.N}x${r.K}`,
    flops(r.gflops),
    "our f32",
    r.x_f32,
    0.9,
  );
}
if (qm?.copy) {
  console.log(
    `    copy ceiling: ${
      f(qm.copy.best_gbps, 1)
    } GB/s (read + write), ${qm.copy.rows.length} measurements`,
  );
}
for (const r of qgpu.filter((r) => /^(nf4|f32)/.test(r.format) && r.M === 1)) {
  line(
    "3",
    `${r.format}${tableTag(r)} M=1 ${r.N}x${r.K} (${f(r.weightBytes / 2 ** 20, 1)} MiB)`,
    gbs(r.gbps),
    gbs(qm?.copy?.best_gbps),
    r.copy_fraction,
    0.6,
  );
}

// Goal 4: our GPT-2-small step vs PyTorch + PEFT at the same batch × context.
const tt = rowsOf(th).filter((r) => r.model && String(r.model).startsWith("GPT-2"));
for (const r of rowsOf(tr).filter((r) => isGpu(r) && r.method)) {
  const refMethod = r.method === "qlora" ? "lora" : r.method;
  const ref = tt.find((t) =>
    t.method === refMethod && t.batch === r.batch && t.context === r.context && t.model === r.model
  );
  const tag = `${r.method} ${r.batch}x${r.context}${
    r.model === "GPT-2 small (124 M)" ? "" : " (small model)"
  }${r.attention && r.attention !== "auto" ? ` ${r.attention} attn` : ""}`;
  line(
    "4",
    `step ${tag} vs torch ${refMethod}`,
    `${Math.round(r.tokens_per_s)} tok/s`,
    ref ? `${Math.round(ref.tokens_per_s)} tok/s` : "—",
    ref ? r.tokens_per_s / ref.tokens_per_s : undefined,
    r.method === "qlora" ? 0.5 : undefined,
  );
  console.log(
    `      ${r.dispatches_per_step} dispatches/step, peak ${
      f(r.peak_bytes / 2 ** 30)
    } GiB, ${r.trainable_params} trainable${
      ref
        ? `; torch: ${ref.impl}, ${ref.trainable_params} trainable, peak ${
          f((ref.peak_bytes ?? NaN) / 2 ** 30)
        } GiB`
        : ""
    }`,
  );
  // Issue 15, item 2: one wait per step, few submits, a small host share.
  console.log(
    `      attention ${r.attention_path ?? "—"}; ${r.gpu_waits_per_step ?? "—"} GPU waits, ${
      r.submits_per_step ?? "—"
    } submits, ${r.buffers_created_per_step ?? "—"} new buffers per step; host ${
      r.host_ms_per_step == null ? "— (no profile)" : `${f(r.host_ms_per_step, 1)} ms`
    } of ${f(r.profile_wall_ms_per_step ?? r.ms, 1)} ms per step`,
  );
  if (r.profile_error) console.log(`      no GPU profile: ${r.profile_error}`);
  if (r.gpu_ms_by_kernel) {
    const tot = r.gpu_ms_per_step as number;
    const top = Object.entries(r.gpu_ms_by_kernel as Record<string, number>).slice(0, 8)
      .map(([k, v]) => `${k} ${f(v, 1)} ms (${f(100 * v / tot, 0)} %)`);
    console.log(`      GPU time ${f(tot, 1)} ms/step: ${top.join(", ")}`);
  }
}
// Attention: the tiled kernels vs the row kernels and the composed ops, same run (not a goal;
// decides the default per GPU). Ratios above 1: the tiled kernels are faster.
const at = load("attention.json");
for (const r of rowsOf(at).filter((r) => r.error)) {
  console.log(`-   attention ${r.shape} ${r.pass} ${r.tiles ?? r.mode}: FAILED (${r.error})`);
}
for (const r of rowsOf(at).filter((r) => r.mode === "tiled" && !r.error)) {
  for (const other of ["rows", "composed"]) {
    const c = rowsOf(at).find((x) =>
      x.mode === other && x.shape === r.shape && x.pass === r.pass && !x.error
    );
    line(
      "-",
      `attention ${r.shape} ${r.pass}`,
      `${f(r.ms, 3)} ms tiled${r.tile_bytes ? ` ≤${Math.round(r.tile_bytes / 1024)} KiB` : ""}`,
      c ? `${f(c.ms, 3)} ms ${other}` : "—",
      c ? c.ms / r.ms : undefined,
    );
  }
}
// Issue 15, item 1: `auto` never slower than a path it could use. Ratio: the fastest row of the
// shape and pass / auto's time (1.00 when auto picked the fastest; tiled rows at non-default
// budgets or thread counts are not auto's to pick, so slightly below 1 can be fine).
for (const r of rowsOf(at).filter((r) => r.mode === "auto" && !r.error)) {
  line(
    "15",
    `attention auto ${r.shape} ${r.pass === "forward" ? "fwd" : "fwd+bwd"}: ${r.path}${
      r.tuned ? " (tuned)" : ""
    }`,
    `${f(r.ms, 3)} ms`,
    `${f(r.ms / r.auto_vs_best, 3)} ms best`,
    1 / r.auto_vs_best,
    r.pass === "forward" ? undefined : 0.9,
  );
}
if (asJson) console.log(JSON.stringify(out, null, 2));
