import assert from "node:assert/strict";
import { cpu, GPT, setSplitBytes } from "../../lib/mod.ts";
import type { Backend } from "../../lib/backend/backend.ts";
import { parseTrainArgs, type TrainArgs } from "../../lib/train/args.ts";
import { InputError } from "../../lib/train/input_error.ts";
import { activationBytesLowerBound, machineFacts, preflight } from "../../lib/train/preflight.ts";

// The train flags checked against a model before any slow work (issue 21.4 and 21.9).
const cfg = { vocab_size: 300, n_positions: 128, n_embd: 48, n_layer: 3, n_head: 4 };

function args(argv: string[]): TrainArgs {
  const a = parseTrainArgs(argv);
  if ("help" in a) throw new Error("unexpected help");
  return a;
}

function refuses(fn: () => void, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected an InputError, got ${e}`);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

Deno.test("preflight: the activation bound counts GPT-2's block outputs, residuals and logits", () => {
  const model = GPT.init(cfg, { device: cpu, seed: 2 });
  // Per token and block: c_attn 3C + attn.c_proj C + c_fc 4C + mlp.c_proj C, and 4C of norms and
  // residuals; per token 2V for the logits and their gradient; f32.
  const C = cfg.n_embd, perToken = cfg.n_layer * (9 * C + 4 * C) + 2 * cfg.vocab_size;
  assert.equal(activationBytesLowerBound(model, 7 * 13), 4 * 7 * 13 * perToken);
  model.dispose();
});

Deno.test("preflight: ctx, layers, targets, adapter buffer and memory each give one clear error", () => {
  const model = GPT.init(cfg, { device: cpu, seed: 2 });
  const plenty = { totalMemory: 1e12 };
  const ok = (argv: string[], dev: Backend = cpu) =>
    preflight(args(argv), model, dev, args(argv).targets, plenty);
  ok(["--ctx", "64", "--batch", "8"]);
  ok(["--method", "freeze-lower", "--layers", "3"]);
  ok(["--targets", "c_fc,attn.c_proj"]);
  refuses(() => ok(["--ctx", "129"]), /--ctx 129 exceeds the base model's context length 128/);
  refuses(
    () => ok(["--method", "freeze-lower", "--layers", "4"]),
    /--layers 4: the base model has 3 blocks; expected 0\.\.3/,
  );
  refuses(
    () => ok(["--targets", "c_fc,q_proj"]),
    /--targets c_fc,q_proj: "q_proj" matches no linear layer of this gpt2 model \(its layers are c_attn, c_proj, c_fc\)/,
  );
  // Logits [B, T, V] over the adapter's largest buffer are computed in row chunks (lmLoss):
  // accepted; refused only when one row of logits cannot fit.
  const small = { ...cpu, maxStorageBytes: 4 * 8 * 64 * 300 - 1 } as unknown as Backend;
  ok(["--ctx", "64", "--batch", "8"], small);
  const tiny = { ...cpu, maxStorageBytes: 4 * 300 - 1 } as unknown as Backend;
  refuses(
    () => ok(["--ctx", "64", "--batch", "8"], tiny),
    /one row of logits \(300 × f32, 1\.2 KB\) is over this adapter's largest buffer \(1\.2 KB\)/,
  );
  // Memory: refused when the lower bound exceeds the machine, accepted at the bound.
  const need = activationBytesLowerBound(model, 1000 * 64);
  const a = args(["--batch", "1000", "--ctx", "64"]);
  preflight(a, model, cpu, a.targets, { totalMemory: need });
  refuses(
    () => preflight(a, model, cpu, a.targets, { totalMemory: need - 1 }),
    /--batch 1000 --ctx 64: one micro-batch needs at least .* for activations, more than this machine's .* of memory; lower --batch or --ctx/,
  );
  // Unknown memory (no permission to read it): the check is skipped.
  preflight(a, model, cpu, a.targets, { totalMemory: null });
  model.dispose();
});

Deno.test("preflight: a parameter stored in row chunks trains with every method", () => {
  // wte [300, 48] is 57.6 kB; with tensors over 40 kB split, it is stored in 2 row chunks, which
  // full fine-tuning (and freeze-lower's tied head) train chunk by chunk.
  const prev = setSplitBytes(40_000);
  const model = (() => {
    try {
      return GPT.init(cfg, { device: cpu, seed: 2 });
    } finally {
      setSplitBytes(prev);
    }
  })();
  assert.equal(model.wte.chunks?.length, 2);
  const check = (argv: string[]) =>
    preflight(args(argv), model, cpu, args(argv).targets, { totalMemory: 1e12 });
  for (const m of ["lora", "qlora", "full", "freeze-lower", "bitfit", "adapter"]) {
    check(["--method", m]);
  }
  model.dispose();
});

Deno.test("preflight: the machine's memory is read when the permission is granted", () => {
  const m = machineFacts();
  const granted = Deno.permissions.querySync({ name: "sys", kind: "systemMemoryInfo" });
  if (granted.state === "granted") assert.equal(m.totalMemory, Deno.systemMemoryInfo().total);
  else assert.equal(m.totalMemory, null);
});
