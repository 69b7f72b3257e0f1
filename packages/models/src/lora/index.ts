/**
 * LoRA (PEFT-compatible): `LoraConfig`, `getPeftModel`, `PeftModel` (`fromPretrained`, `savePretrained`,
 * `mergeAndUnload`, adapter toggling) and `LoraPlugin`.
 * @module
 */
export * from "./config.js";
export * from "./layer.js";
export type { PeftFromPretrainedOptions, PeftSaveOptions } from "./adapter-files.js";
export type { GetPeftModelOptions, LoraBaseModel } from "./injection.js";
export * from "./model.js";
export * from "./plugin.js";
