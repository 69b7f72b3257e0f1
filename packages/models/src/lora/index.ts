/**
 * LoRA (PEFT-compatible): `LoraConfig`, `getPeftModel`, `PeftModel` (`fromPretrained`, `savePretrained`,
 * `mergeAndUnload`, adapter toggling) and `LoraPlugin`.
 * @module
 */
export * from "./config.js";
export * from "./layer.js";
export * from "./model.js";
export * from "./plugin.js";
