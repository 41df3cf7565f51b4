/**
 * Training-step benchmarks, side by side in one run on each backend: a LoRA layer's forward +
 * backward (f32 base vs NF4 base), and whole training steps (tokens/s) of the shipped model's shape
 * and of a GPT-2-small shape, for full fine-tuning, LoRA and QLoRA.
 *
 * Flags: `--json`, `--min-ms 1500` (time per measurement), `--gpt2-small` (include the 124 M
 * shape: slow on a CPU), `--backends cpu,webgpu`.
 */

import { parseArgs } from "node:util";
import {
  AdamW,
  type Backend,
  cpu,
  getDevice,
  GPT,
  type GPTConfig,
  Linear,
  LoraLinear,
  preparePeft,
  QuantLinear,
  Rng,
  scope,
  sum,
  Tape,
  Tensor,
} from "../lib/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    "min-ms": { type: "string", default: "1500" },
    "gpt2-small": { type: "boolean", default: false },
    backends: { type: "string", default: "cpu,webgpu" },
  },
});
const minMs = Number(values["min-ms"]);
const backends: Backend[] = [];
for (const b of values.backends.split(",")) {
  if (b === "cpu") backends.push(cpu);
  else if (b === "webgpu") {
    try {
      backends.push(await getDevice({ backend: "webgpu", quiet: true }));
    } catch (e) {
      console.error(`bench: no WebGPU backend (${(e as Error).message})`);
    }
  }
}

/** Repeats `fn` (after one warm-up) until minMs has passed; mean ms per call. */
async function time(fn: () => Promise<void>): Promise<number> {
  await fn();
  let reps = 0;
  const t0 = performance.now();
  do {
    await fn();
    reps++;
  } while (performance.now() - t0 < minMs);
  return (performance.now() - t0) / reps;
}

interface Row {
  bench: string;
  backend: string;
  adapter: string;
  ms: number;
  tokens_per_s?: number;
}
const rows: Row[] = [];

// 1. LoRA layer forward + backward, r = 8, x: [1024, 768] (a GPT-2-small linear at 8 × 128 tokens)
for (const dev of backends) {
  for (const base of ["f32", "nf4"] as const) {
    const lin = Linear.init(768, 768, { device: dev, rng: new Rng(1) });
    const b = base === "f32" ? lin : await QuantLinear.fromLinear(lin, { format: "nf4" });
    const l = new LoraLinear(b, { r: 8, alpha: 16, seed: 1, dropout: 0 });
    const x = Tensor.randn([1024, 768], { device: dev, seed: 2 });
    const ms = await time(() =>
      scope(async () => {
        const tape = new Tape();
        tape.watch(x, l.loraA, l.loraB);
        const loss = tape.run(() => sum(l.forward(x).reshape([1024 * 768]), 0));
        const g = tape.backward(loss);
        await g.get(l.loraB)!.toArray();
      })
    );
    rows.push({
      bench: `lora-layer fwd+bwd 768x768 r8 ${base} base, 1024 tokens`,
      backend: dev.kind,
      adapter: dev.description,
      ms,
      tokens_per_s: 1024 / (ms / 1000),
    });
  }
}

// 2. Training steps (forward, backward, clip-free AdamW update) in tokens/s.
const shapes: [string, GPTConfig, number, number][] = [
  [
    "shipped base (1.85 M)",
    { vocab_size: 257, n_positions: 128, n_embd: 192, n_layer: 4, n_head: 6 },
    8,
    128,
  ],
];
if (values["gpt2-small"]) {
  shapes.push([
    "GPT-2 small (124 M)",
    { vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 },
    1,
    256,
  ]);
}
for (const dev of backends) {
  for (const [name, cfg, B, T] of shapes) {
    for (const method of ["full", "lora", "qlora"] as const) {
      const model = GPT.init(cfg, { device: dev, seed: 1 });
      const pm = await preparePeft(model, { method, dropout: 0 });
      const opt = new AdamW(pm.trainable, { lr: 1e-4, weightDecay: 0 });
      const rng = new Rng(3);
      const ids = Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
      const x = Tensor.fromArray(ids, [B, T], { device: dev, dtype: "i32" });
      const y = Tensor.fromArray(ids.map((t) => (t + 1) % cfg.vocab_size), [B, T], {
        device: dev,
        dtype: "i32",
      });
      const ms = await time(() =>
        scope(async () => {
          const tape = new Tape();
          tape.watch(...pm.trainable.values());
          const loss = tape.run(() => model.loss(x, y));
          opt.update(tape.backward(loss));
          await loss.item();
        })
      );
      rows.push({
        bench: `train step ${name} ${method} ${B}x${T}`,
        backend: dev.kind,
        adapter: dev.description,
        ms,
        tokens_per_s: (B * T) / (ms / 1000),
      });
      opt.dispose();
      model.dispose();
    }
  }
}

if (values.json) {
  console.log(
    JSON.stringify(
      { bench: "train_step", deno: Deno.version.deno, date: new Date().toISOString(), rows },
      null,
      2,
    ),
  );
} else {
  console.log("training benchmarks (ms per call; tokens/s)");
  for (const r of rows) {
    console.log(
      `${r.bench.padEnd(58)} ${r.backend.padEnd(7)} ${r.ms.toFixed(1).padStart(9)} ms ${
        Math.round(r.tokens_per_s ?? 0).toString().padStart(8)
      } tok/s`,
    );
  }
  for (const dev of backends) console.log(`  ${dev.kind}: ${dev.description}`);
}
