/**
 * A base model with a PEFT LoRA adapter on top, loaded the way `deno task train` built it, so
 * that evaluation, generation and merging see the numbers the adapter was trained against:
 * the adapter's base format (`loralab.quant` of adapter_config.json: f32 for LoRA, NF4/FP4/int8/
 * f16 for QLoRA, with its block size and double quantization) is applied to the base's block
 * linears, and a bitsandbytes 4-bit base keeps its stored codes for a 4-bit adapter.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { HfLoadOptions } from "../io/hf_load.ts";
import { isLoralabFolder, type LoadedModel, loadModel } from "../io/model_files.ts";
import { pathExists, readJsonChecked } from "../io/read_file.ts";
import { type PeftConfig, type PeftModel, preparePeft } from "./apply.ts";
import { loadAdapter, readAdapterConfig } from "./peft_files.ts";

/** What {@link loadWithAdapter} returns. */
export interface AdaptedModel extends LoadedModel {
  /** The prepared adapter layers (null without an adapter). */
  peft: PeftModel | null;
  /** The adapter's config as read from adapter_config.json (null without an adapter). */
  adapterConfig: PeftConfig | null;
  /** Whether the base folder is a bitsandbytes 4-bit checkpoint (config.json quantization_config). */
  bnbBase: boolean;
}

/**
 * Loads `base` onto `device` and, when `adapter` is given, applies the LoRA adapter of that
 * folder in inference mode (dropout off). adapter_config.json is read and checked before the
 * base is loaded, so a missing or malformed adapter fails fast. Errors name the folder.
 *
 * A bitsandbytes 4-bit base is read with the adapter's quantization (its 4-bit codes as
 * stored; `none` de-quantizes them to f32). A Hugging Face base under a LoRA/QLoRA adapter with
 * a quantized base format is quantized while it loads, tensor by tensor, as `deno task train`
 * loads it (the same codes as quantizing the f32 model afterwards, without the whole model ever
 * in f32); loralab's own model folders are read in f32 and `preparePeft` quantizes them as
 * training did. `opts.onProgress` follows the load (see lib/io/hf_load.ts).
 */
export async function loadWithAdapter(
  base: string,
  adapter: string | null,
  device: Backend,
  opts: Pick<HfLoadOptions, "onProgress"> = {},
): Promise<AdaptedModel> {
  let pc: PeftConfig | null = null;
  if (adapter !== null) {
    if (!(await pathExists(`${adapter}/adapter_config.json`))) {
      throw new Error(
        `adapter ${adapter}: no adapter_config.json there (expected a PEFT adapter folder, ` +
          "e.g. a run folder of deno task train)",
      );
    }
    try {
      pc = await readAdapterConfig(adapter);
    } catch (e) {
      throw new Error(`adapter ${adapter}: ${(e as Error).message}`);
    }
  }
  const bnbBase = await hasQuantizationConfig(base);
  // Quantize while loading where training did (loadBase in lib/train/setup.ts): a bitsandbytes
  // base, or a Hugging Face one under an adapter whose method freezes every block linear (LoRA).
  const quantizeOnLoad = pc !== null &&
    (bnbBase ||
      (pc.method === "lora" || pc.method === "qlora") && !(await isLoralabFolder(base)));
  let loaded: LoadedModel;
  try {
    loaded = await loadModel(base, device, {
      quantize: quantizeOnLoad ? pc!.quant ?? "none" : "none",
      blockSize: pc?.blockSize,
      doubleQuant: pc?.doubleQuant,
      onProgress: opts.onProgress,
    });
  } catch (e) {
    throw new Error(`base ${base}: ${(e as Error).message}`);
  }
  if (!pc || adapter === null) return { ...loaded, peft: null, adapterConfig: null, bnbBase };
  try {
    // A GPT-2 adapter names c_attn…; on another architecture its targets match nothing.
    const pm = await preparePeft(loaded.model, pc);
    await loadAdapter(adapter, pm);
    pm.setTraining(false);
    return { ...loaded, peft: pm, adapterConfig: pc, bnbBase };
  } catch (e) {
    loaded.model.dispose();
    throw new Error(
      `adapter ${adapter} does not fit base ${base} (${loaded.model.arch}): ${
        (e as Error).message
      }`,
    );
  }
}

/** Whether config.json of `dir` has a quantization_config (a bitsandbytes checkpoint). */
async function hasQuantizationConfig(dir: string): Promise<boolean> {
  try {
    const j = await readJsonChecked(`${dir}/config.json`) as Record<string, unknown> | null;
    return j?.quantization_config != null;
  } catch {
    return false; // loadModel reports the unreadable config.json
  }
}
