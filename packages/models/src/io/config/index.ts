/**
 * `config.json` and `generation_config.json`: their types, transformers' defaults and float fields,
 * validation, and reading.
 * @module
 */
export {
  GENERATION_CONFIG_DEFAULTS,
  MODEL_CONFIG_DEFAULTS,
  type ModelConfigDefaults,
} from "./defaults.js";
export { CONFIG_FLOAT_FIELDS, GENERATION_CONFIG_FLOAT_FIELDS } from "./float-fields.js";
export { readGenerationConfig, readModelConfig } from "./read.js";
export {
  CONFIG_NAME,
  GENERATION_CONFIG_NAME,
  type GenerationConfig,
  type PretrainedConfig,
  type RopeScaling,
} from "./schema.js";
export { validateGenerationConfig, validateModelConfig } from "./validate.js";
