/**
 * `deno task quantize --out DIR`: writes a model folder (default: the shipped base model in
 * data/base/; Hugging Face GPT-2 folders in f32/f16/bf16 work too) as a bitsandbytes 4-bit
 * checkpoint: the block linears in NF4 (or FP4) with bitsandbytes' double quantization, in the
 * layout transformers writes for `BitsAndBytesConfig(load_in_4bit=True)`. The result is a
 * QLoRA-ready base: `deno task train --base DIR` trains on it as stored, and transformers loads
 * it with bitsandbytes installed (`AutoModelForCausalLM.from_pretrained(DIR)`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { cpu } from "../backend/device.ts";
import { loadModel, saveBnbModel } from "../io/model_files.ts";
import { GPT } from "../models/gpt2/model.ts";

const HELP = `deno task quantize --out DIR [flags]   write a bitsandbytes 4-bit checkpoint

  --model DIR         f32/f16/bf16 model folder (default data/base; GPT-2 architecture)
  --out DIR           output folder (created; its files are written atomically)
  --quant nf4|fp4     4-bit type (default nf4)
  --block N           weights per absmax block: 32 … 4096, a power of two (default 64)
  --no-double-quant   keep the absmax constants in f32 (4.5 bits per weight at block 64
                      instead of 4.127)
  --help`;

function fail(msg: string, code = 2): never {
  console.error(`quantize: ${msg}`);
  Deno.exit(code);
}

let a;
try {
  a = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string", default: "data/base" },
      out: { type: "string" },
      quant: { type: "string", default: "nf4" },
      block: { type: "string", default: "64" },
      "no-double-quant": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  }).values;
} catch (e) {
  fail(`${(e as Error).message} (see --help)`);
}
if (a.help) {
  console.log(HELP);
  Deno.exit(0);
}
if (!a.out) fail("--out DIR is required (see --help)");
if (a.quant !== "nf4" && a.quant !== "fp4") fail(`--quant ${a.quant}: expected nf4 or fp4`);
const block = Number(a.block);
if (!Number.isInteger(block) || block < 32 || block > 4096 || (block & (block - 1)) !== 0) {
  fail(`--block ${a.block}: expected a power of two in [32, 4096] (bitsandbytes' block sizes)`);
}
try {
  const { model, tokenizer } = await loadModel(a.model, cpu);
  if (!(model instanceof GPT)) fail(`--model ${a.model}: only GPT-2 models are written here`, 1);
  await saveBnbModel(a.out, model, tokenizer, {
    quantType: a.quant,
    blockSize: block,
    doubleQuant: !a["no-double-quant"],
  }, { written_by: "loralab quantize", source: a.model });
  console.log(
    `quantize: ${a.model} -> ${a.out} (bitsandbytes ${a.quant}, block ${block}, ` +
      `double quant ${!a["no-double-quant"]})`,
  );
} catch (e) {
  fail((e as Error).message, 1);
}
