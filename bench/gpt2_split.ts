/**
 * A manual check (not a test; minutes on lavapipe): the real GPT-2-small shape (random weights,
 * GPT.init with vocab 50257, n_embd 768, 12 layers, ctx 1024) on the WebGPU backend, whose token
 * embedding (154 MB) is over lavapipe's 128 MiB buffer limit and so stored in row chunks. Runs
 * LoRA, QLoRA or full fine-tuning steps (full trains the split embedding chunk by chunk, tied to
 * the output projection) and a few generated tokens, and prints times and memory.
 *
 *   deno run -A bench/gpt2_split.ts [--method lora|qlora|full] [--batch 1] [--ctx 256]
 *     [--steps 2] [--tokens 5]
 *
 * @module
 */

import {
  AdamW,
  generate,
  getDevice,
  GPT,
  type GPTConfig,
  preparePeft,
  Rng,
  scope,
  Tape,
  Tensor,
} from "../lib/mod.ts";

const a: Record<string, string> = {
  method: "lora",
  batch: "1",
  ctx: "256",
  steps: "2",
  tokens: "5",
};
for (let i = 0; i < Deno.args.length; i += 2) {
  const k = Deno.args[i].replace(/^--/, "");
  if (!(k in a) || Deno.args[i + 1] === undefined) throw new Error(`unknown flag ${Deno.args[i]}`);
  a[k] = Deno.args[i + 1];
}
const B = Number(a.batch), T = Number(a.ctx), steps = Number(a.steps), nTok = Number(a.tokens);
const method = a.method as "lora" | "qlora" | "full";
if (!["lora", "qlora", "full"].includes(method)) throw new Error(`unknown --method ${method}`);
const cfg: GPTConfig = {
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
};
const mb = (x: number) => `${(x / 2 ** 20).toFixed(0)} MiB`;
const rss = () => mb(Deno.memoryUsage().rss);

const dev = await getDevice({ backend: "webgpu" });
const gpuMem = () => {
  const m = (dev as unknown as { deviceMemory?: () => { live: number; peak: number } })
    .deviceMemory?.();
  return m ? `device live ${mb(m.live)}, peak ${mb(m.peak)}` : "";
};
console.log(`${dev.description}: largest buffer ${mb(dev.maxStorageBytes)}`);
let t0 = performance.now();
const m = GPT.init(cfg, { device: dev, seed: 1 });
console.log(
  `init ${((performance.now() - t0) / 1e3).toFixed(1)} s; wte [${m.wte.shape}] ` +
    `${mb(m.wte.bytes)} in ${m.wte.chunks?.length ?? 1} chunk(s); rss ${rss()}; ${gpuMem()}`,
);
t0 = performance.now();
const pm = await preparePeft(m, { method, r: 8, seed: 2 });
const counts = pm.counts();
console.log(
  `prepare ${method} ${((performance.now() - t0) / 1e3).toFixed(1)} s; ` +
    `${(counts.trainable / 1e6).toFixed(1)} M trainable; ${gpuMem()}`,
);
const opt = new AdamW(pm.trainable, { lr: 1e-3, weightDecay: 0 });
const rng = new Rng(3);
for (let s = 0; s < steps; s++) {
  t0 = performance.now();
  const loss = await scope(async () => {
    const ids = Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
    const tg = Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
    const x = Tensor.fromArray(ids, [B, T], { device: dev, dtype: "i32" });
    const y = Tensor.fromArray(tg, [B, T], { device: dev, dtype: "i32" });
    const tape = new Tape();
    tape.watch(...pm.trainable.values());
    const l = tape.run(() => m.loss(x, y));
    const g = tape.backward(l);
    opt.update(g);
    return await l.item();
  });
  const dt = (performance.now() - t0) / 1e3;
  console.log(
    `step ${s}: loss ${loss.toFixed(4)} (ln V = ${Math.log(cfg.vocab_size).toFixed(4)}), ` +
      `${dt.toFixed(1)} s, ${((B * T) / dt).toFixed(0)} tok/s; rss ${rss()}; ${gpuMem()}`,
  );
}
t0 = performance.now();
const out = await generate(m, [464, 2068, 7586, 21831], { maxTokens: nTok, temperature: 0 });
const dt = (performance.now() - t0) / 1e3;
console.log(
  `generate ${out.length} tokens [${out}] in ${dt.toFixed(1)} s ` +
    `(${(out.length / dt).toFixed(2)} tok/s); rss ${rss()}; ${gpuMem()}`,
);
