/**
 * Hugging Face model folders, re-exported from the files they were split into:
 * lazy_safetensors.ts (LazySafetensors), hf_weights.ts (HfWeights, hashModelWeights),
 * hf_config.ts (readHfConfig, hfArch, checkConfigFitsFiles), hf_load.ts (loadHfWeights,
 * loadHfModel), lib/data/tokenizer_files.ts (loadFolderTokenizer), and the families' config and
 * size functions from lib/models/. Existing importers keep working through this path.
 *
 * @module
 */

export * from "./lazy_safetensors.ts";
export * from "./hf_weights.ts";
export * from "./hf_config.ts";
export * from "./hf_load.ts";
export { toF32 } from "./safetensors.ts";
export { loadFolderTokenizer } from "../data/tokenizer_files.ts";
export {
  gpt2ConfigFromHf,
  gpt2Dims,
  gpt2Expected,
  gpt2ParamCount,
} from "../models/gpt2/weights.ts";
export { llamaConfigFromHf, llamaParamCount } from "../models/llama/weights.ts";
