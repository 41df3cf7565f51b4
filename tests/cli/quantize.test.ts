import assert from "node:assert/strict";
import { ByteTokenizer, cpu, GPT, QuantLinear } from "../../lib/mod.ts";
import { loadModel, readSafetensors, saveModel } from "../../lib/io/mod.ts";
import { runScript } from "../harness.ts";

// `deno task quantize`: a tiny saved GPT becomes a bitsandbytes folder that loads back with its
// linears as stored 4-bit weights; bad flags give one clear error.
function run(args: string[]) {
  return runScript("quantize.ts", [
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-ffi=/usr/lib",
  ], args);
}

Deno.test("deno task quantize: writes a bitsandbytes 4-bit folder that loads back 4-bit", async () => {
  const src = await Deno.makeTempDir(), out = await Deno.makeTempDir();
  const cfg = { vocab_size: 260, n_positions: 16, n_embd: 16, n_layer: 1, n_head: 2 };
  await saveModel(src, GPT.init(cfg, { device: cpu, seed: 3 }), new ByteTokenizer());
  const r = await run(["--model", src, "--out", out, "--quant", "fp4", "--block", "32"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  assert.equal(j.quantization_config.bnb_4bit_quant_type, "fp4");
  assert.equal(j.quantization_config.bnb_4bit_use_double_quant, true);
  const t = (await readSafetensors(`${out}/model.safetensors`)).tensors;
  const st = JSON.parse(
    new TextDecoder().decode(
      t.get("transformer.h.0.mlp.c_fc.weight.quant_state.bitsandbytes__fp4")!.data,
    ),
  );
  assert.deepEqual([st.blocksize, st.shape, st.nested_blocksize], [32, [64, 16], 256]);
  const { model } = await loadModel(out, cpu, { quantize: "fp4" });
  for (const l of model.linears().values()) assert.ok(l instanceof QuantLinear);
  model.dispose();
  const bad = await run(["--model", src, "--out", out, "--block", "48"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--block 48: expected a power of two in \[32, 4096\]/);
  await Deno.remove(src, { recursive: true });
  await Deno.remove(out, { recursive: true });
});
