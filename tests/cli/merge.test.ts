import assert from "node:assert/strict";
import { ByteTokenizer, cpu, GPT, preparePeft, saveAdapter, Tensor } from "../../lib/mod.ts";
import { loadModel, saveModel } from "../../lib/io/mod.ts";
import { runScript } from "../harness.ts";

// `deno task merge`: a QLoRA run folder merges into a plain model folder (saying that the base
// was de-quantized); bad input is one line on stderr with exit status 2. The numbers are
// checked in tests/peft/merge.test.ts.
function run(args: string[]) {
  return runScript("merge.ts", [
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-ffi=/usr/lib",
  ], args);
}

async function tinyBase(dir: string, n_embd: number) {
  const gpt = GPT.init(
    { vocab_size: 260, n_positions: 16, n_embd, n_layer: 1, n_head: 2 },
    { device: cpu, seed: n_embd },
  );
  await saveModel(dir, gpt, new ByteTokenizer());
  gpt.dispose();
}

async function qloraAdapter(base: string, dir: string) {
  const { model } = await loadModel(base, cpu);
  const pm = await preparePeft(model, { method: "qlora", r: 2, alpha: 4 });
  for (const l of pm.loraLayers.values()) {
    l.loraB.dispose();
    l.loraB = Tensor.randn(l.loraB.shape, { device: cpu, seed: 5, std: 0.1 }).keep();
  }
  await saveAdapter(dir, pm, base);
  model.dispose();
}

Deno.test("deno task merge: a QLoRA adapter becomes a plain model folder; bad input exits 2", async () => {
  const root = await Deno.makeTempDir();
  await tinyBase(`${root}/base`, 16);
  await tinyBase(`${root}/wide`, 32);
  await qloraAdapter(`${root}/base`, `${root}/adapter`);
  await qloraAdapter(`${root}/wide`, `${root}/wide-adapter`);

  const ok = await run([
    "--base",
    `${root}/base`,
    "--adapter",
    `${root}/adapter`,
    "--out",
    `${root}/m`,
  ]);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /LoRA r=2, α=4, scale 2, 4 layers/);
  assert.match(
    ok.out,
    /QLoRA adapter: merged into the DE-QUANTIZED nf4, block 64, double quantization base/,
  );
  assert.match(ok.out, /wrote .*\/m\/ \(config\.json, model\.safetensors F32, tokenizer\.json\)/);
  const { model } = await loadModel(`${root}/m`, cpu);
  assert.equal(model.numLayers, 1);
  model.dispose();

  const bad = async (args: string[], re: RegExp) => {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, re);
    assert.equal(r.err.trim().split("\n").length, 1, `one line: ${r.err}`);
  };
  const [base, adapter] = [["--base", `${root}/base`], ["--adapter", `${root}/adapter`]];
  await bad([...base, ...adapter, "--out", `${root}/x`, "--bogus"], /^merge: unknown flag --bogus/);
  await bad([...base, ...adapter], /^merge: --out DIR is required/);
  await bad([...base, ...adapter, "--out", `${root}/x`, "extra"], /unexpected argument extra/);
  await bad([...base, ...adapter, "--out"], /--out: missing value/);
  await bad(
    [...base, "--adapter", `${root}/none`, "--out", `${root}/x`],
    /adapter .*none: .*adapter_config\.json/,
  );
  await bad(
    [...base, "--adapter", `${root}/wide-adapter`, "--out", `${root}/x`],
    /does not fit base .*\(gpt2\): .*is \[2,32\], expected \[2,16\]/,
  );
  await bad([...base, ...adapter, "--out", `${root}/m`], /--out .*\/m exists and is not empty/);
  await bad(["--base", `${root}/nobase`, ...adapter, "--out", `${root}/x`], /nobase/);
  assert.ok(!(await exists(`${root}/x`)), "nothing written on bad input");
  await Deno.remove(root, { recursive: true });
});

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}
