// Untrusted files (issue 21): links out of the read sandbox, special files, strict headers,
// configs that describe more than their files hold, wrong-typed adapter fields, NaN weights.
import assert from "node:assert/strict";
import { ByteTokenizer, cpu, GPT, preparePeft, saveAdapter } from "../../lib/mod.ts";
import { LazySafetensors, loadModel, readFileChecked, saveModel } from "../../lib/io/mod.ts";
import { loadAdapter, readAdapterConfig } from "../../lib/peft/peft_files.ts";
import { loadTextSource } from "../../lib/data/text_source.ts";

const CFG = { vocab_size: 257, n_positions: 16, n_embd: 16, n_layer: 1, n_head: 2 };

/** A safetensors file with a hand-made header (no checks), for the strict reader's cases. */
function rawFile(header: string, dataBytes: number): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  return out;
}

Deno.test("untrusted: the lazy (HF) reader is as strict as the safetensors reader", async () => {
  const dir = await Deno.makeTempDir();
  const t = (o: number[]) => `{"dtype":"F32","shape":[2],"data_offsets":[${o}]}`;
  const cases: [string, number, RegExp][] = [
    [`{"a":${t([0, 8])},"b":${t([4, 12])}}`, 12, /overlaps/],
    [`{"a":${t([0, 8])},"b":${t([12, 20])}}`, 20, /hole in data section/],
    [`{"a":${t([0, 8])}}`, 12, /4 bytes left over/],
    [`{"a":${t([0, 8])},"a":${t([8, 16])}}`, 16, /duplicate key "a"/],
    [`{"__metadata__":{"k":1},"a":${t([0, 8])}}`, 8, /__metadata__ value for "k" is not a string/],
  ];
  for (const [i, [h, n, re]] of cases.entries()) {
    await Deno.writeFile(`${dir}/${i}.safetensors`, rawFile(h, n));
    await assert.rejects(() => LazySafetensors.open(`${dir}/${i}.safetensors`), re);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("untrusted: FIFOs and devices are refused before they are opened", async () => {
  const dir = await Deno.makeTempDir();
  const mk = await new Deno.Command("mkfifo", { args: [`${dir}/pipe.txt`] }).output();
  assert.equal(mk.code, 0);
  await assert.rejects(
    () => loadTextSource(`${dir}/pipe.txt`),
    /FIFO \(named pipe\), not a regular file/,
  );
  await Deno.symlink("/dev/zero", `${dir}/zero.txt`);
  await assert.rejects(
    () => loadTextSource(`${dir}/zero.txt`),
    /a link to \/dev\/zero\) is a character device/,
  );
  await Deno.symlink("/dev/urandom", `${dir}/model.safetensors`);
  await assert.rejects(() => readFileChecked(`${dir}/model.safetensors`), /character device/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("untrusted: configs are checked against their files before anything is allocated", async () => {
  const dir = await Deno.makeTempDir();
  await saveModel(dir, GPT.init(CFG, { device: cpu, seed: 1 }), new ByteTokenizer());
  const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  const edit = (o: Record<string, unknown>) =>
    Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...cfg, ...o }));
  await edit({ vocab_size: 2_000_000 });
  await assert.rejects(
    () => loadModel(dir, cpu),
    /vocab_size 2000000.* describes .* parameters.*hold only/,
  );
  await edit({ n_layer: 1_000_000 });
  await assert.rejects(() => loadModel(dir, cpu), /n_layer 1000000.* describes/);
  await edit({ layer_norm_epsilon: -1 });
  await assert.rejects(() => loadModel(dir, cpu), /layer_norm_epsilon = -1: expected a number > 0/);
  await edit({ activation_function: "relu" });
  await assert.rejects(() => loadModel(dir, cpu), /activation_function relu is not supported/);
  await edit({ n_embd: "16" });
  await assert.rejects(() => loadModel(dir, cpu), /n_embd = 16: must be a positive integer/);
  await edit({});
  await loadModel(dir, cpu); // the untouched config still loads
  await Deno.remove(dir, { recursive: true });
});

Deno.test("untrusted: adapter_config fields are validated; r and NaN weights are named", async () => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base`, ad = `${dir}/ad`;
  await saveModel(base, GPT.init(CFG, { device: cpu, seed: 1 }), new ByteTokenizer());
  const { model } = await loadModel(base, cpu);
  const pm = await preparePeft(model, { method: "lora", r: 4, alpha: 8, targets: ["c_attn"] });
  await saveAdapter(ad, pm, base);
  const good = JSON.parse(await Deno.readTextFile(`${ad}/adapter_config.json`));
  const edit = (o: Record<string, unknown>) =>
    Deno.writeTextFile(`${ad}/adapter_config.json`, JSON.stringify({ ...good, ...o }));
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ r: 100000 }, /says r = 100000, but .*lora_A\.weight .* is \[4,16\]/],
    [{ lora_alpha: "16" }, /bad lora_alpha "16"/],
    [{ lora_dropout: "0.1" }, /lora_dropout = "0.1": expected a number in \[0, 1\)/],
    [{ use_rslora: "yes" }, /use_rslora = "yes": expected true or false/],
    [{ loralab: null }, /loralab = null: expected an object/],
    [{ loralab: { ...good.loralab, quant: "bogus" } }, /loralab\.quant = "bogus"/],
    [{ loralab: { ...good.loralab, double_quant: "no" } }, /loralab\.double_quant = "no"/],
    [{ loralab: { ...good.loralab, method: "qlora", quant: "none" } }, /quantized format/],
  ];
  for (const [o, re] of cases) {
    await edit(o);
    await assert.rejects(() => readAdapterConfig(ad), re, JSON.stringify(o));
  }
  await edit({});
  const pc = await readAdapterConfig(ad);
  assert.equal(pc.r, 4);
  // NaN in a weight: named, and nothing replaced.
  const bytes = await Deno.readFile(`${ad}/adapter_model.safetensors`);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  new DataView(bytes.buffer).setFloat32(8 + n + 4 * 5, NaN, true);
  await Deno.writeFile(`${ad}/adapter_model.safetensors`, bytes);
  const pm2 = await preparePeft((await loadModel(base, cpu)).model, pc);
  await assert.rejects(
    () => loadAdapter(ad, pm2),
    /\.lora_A\.weight holds non-finite values \(NaN at index 5\)/,
  );
  await Deno.remove(dir, { recursive: true });
});

/** Runs generate (read-only) with read access to `allow` only; returns exit code and stderr. */
async function generateIn(allow: string[], model: string) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${allow.join(",")}`,
      "--allow-env",
      "--allow-ffi=/usr/lib",
      new URL("../../lib/cli/generate.ts", import.meta.url).pathname,
      "--model",
      model,
      "--max-tokens",
      "4",
    ],
    env: { LORALAB_BACKEND: "cpu" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  return { code: r.code, err: new TextDecoder().decode(r.stderr) };
}

Deno.test("untrusted: symbolic links cannot leave the read sandbox", async () => {
  const inside = await Deno.makeTempDir(), outside = await Deno.makeTempDir();
  await saveModel(`${outside}/m`, GPT.init(CFG, { device: cpu, seed: 1 }), new ByteTokenizer());
  await saveModel(`${inside}/m`, GPT.init(CFG, { device: cpu, seed: 1 }), new ByteTokenizer());
  let r = await generateIn([inside], `${inside}/m`);
  assert.equal(r.code, 0, r.err); // the plain folder loads
  // A whole folder linked outside: refused, naming the link's target.
  await Deno.symlink(`${outside}/m`, `${inside}/linked`);
  r = await generateIn([inside], `${inside}/linked`);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /a link to .*\/m\/config\.json\) is outside what this command may read/);
  // One file linked to /etc/passwd: refused, and none of its bytes are echoed.
  await Deno.remove(`${inside}/m/config.json`);
  await Deno.symlink("/etc/passwd", `${inside}/m/config.json`);
  r = await generateIn([inside], `${inside}/m`);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /a link to \/etc\/passwd\) is outside what this command may read/);
  assert.doesNotMatch(r.err, /root:/);
  assert.doesNotMatch(r.err, /Requires read access|--allow-read flag/);
  await Deno.remove(inside, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});
