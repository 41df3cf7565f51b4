/**
 * Checks of the train flags against the loaded base model and the machine, made before any slow
 * work: the context, `--layers`, each `--targets` name, and a lower bound on the memory one
 * micro-batch needs (`--batch` × `--ctx`). Each failure is one {@link InputError} (exit 2) that
 * names the flag, instead of an allocation failure or a kernel error at the first step.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import { matchesTarget } from "../peft/apply.ts";
import type { TrainArgs } from "./args.ts";
import { InputError } from "./input_error.ts";

/** What {@link preflight} needs of the machine; `totalMemory` null = unknown (no permission). */
export interface MachineFacts {
  /** Physical memory in bytes, or null when it cannot be read. */
  totalMemory: number | null;
}

/**
 * The machine's physical memory, when the process may read it (`--allow-sys=systemMemoryInfo`,
 * which the train task grants); else null and the memory check is skipped.
 */
export function machineFacts(): MachineFacts {
  const p = Deno.permissions.querySync({ name: "sys", kind: "systemMemoryInfo" });
  if (p.state !== "granted") return { totalMemory: null };
  return { totalMemory: Deno.systemMemoryInfo().total };
}

/**
 * A lower bound, in bytes, on the activations a training step over `tokens` positions keeps for
 * its backward pass: per token and block, the outputs of the block's linear layers plus four
 * residual-width vectors (two norms, two residual sums), and per token the logits and their
 * gradient — all f32. Attention scores, optimizer state and the weights come on top, so a run
 * that fails this bound cannot fit; one that passes may still not.
 */
export function activationBytesLowerBound(model: CausalLM, tokens: number): number {
  let linearOut = 0;
  for (const l of model.linears().values()) linearOut += l.outFeatures;
  const perToken = linearOut + model.numLayers * 4 * model.hiddenSize + 2 * model.vocabSize;
  return 4 * tokens * perToken;
}

/** `1234567890` → `"1.23 GB"`. */
function gb(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} KB`;
}

/**
 * Throws an {@link InputError} naming the flag when `args` cannot work with `model` on `dev`:
 * `--ctx` over the model's context length, `--layers` over its block count, a `--targets` name
 * that matches no linear layer, a vocabulary whose one row of logits is over the adapter's largest
 * buffer (more rows go through the loss in chunks), or activations (lower bound) over the
 * machine's memory. `targets` are the resolved target names. (A parameter over that buffer, e.g.
 * GPT-2's 154 MB token embedding on a 128 MiB adapter, is stored in row chunks, and every method
 * but `sparse` trains it chunk by chunk.)
 */
export function preflight(
  args: TrainArgs,
  model: CausalLM,
  dev: Backend,
  targets: readonly string[],
  machine: MachineFacts = machineFacts(),
): void {
  if (args.ctx > model.contextLength) {
    throw new InputError(
      `--ctx ${args.ctx} exceeds the base model's context length ${model.contextLength}`,
    );
  }
  if (args.method === "freeze-lower" && args.layers !== null && args.layers > model.numLayers) {
    throw new InputError(
      `--layers ${args.layers}: the base model has ${model.numLayers} blocks; ` +
        `expected 0..${model.numLayers}`,
    );
  }
  if (args.method === "lora" || args.method === "qlora") {
    const paths = [...model.linears().keys()];
    const names = [...new Set(paths.map((p) => p.split(".").pop()!))];
    for (const t of targets) {
      if (!paths.some((p) => matchesTarget(p, [t]))) {
        throw new InputError(
          `--targets ${targets.join(",")}: "${t}" matches no linear layer of this ${model.arch} ` +
            `model (its layers are ${names.join(", ")})`,
        );
      }
    }
  }
  const tokens = args.batch * args.ctx;
  // Logits over the largest buffer go through the loss in row chunks (lib/nn/lm_loss.ts); one
  // row must fit.
  if (4 * model.vocabSize > dev.maxStorageBytes) {
    throw new InputError(
      `the base model's vocabulary: one row of logits (${model.vocabSize} × f32, ` +
        `${gb(4 * model.vocabSize)}) is over this adapter's largest buffer ` +
        `(${gb(dev.maxStorageBytes)}); use another device`,
    );
  }
  const need = activationBytesLowerBound(model, tokens);
  if (machine.totalMemory !== null && need > machine.totalMemory) {
    throw new InputError(
      `--batch ${args.batch} --ctx ${args.ctx}: one micro-batch needs at least ${gb(need)} ` +
        `for activations, more than this machine's ${gb(machine.totalMemory)} of memory; ` +
        "lower --batch or --ctx (--grad-accum keeps the batch)",
    );
  }
}
