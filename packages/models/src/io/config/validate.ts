/**
 * Validation of parsed `config.json` and `generation_config.json`: a type check per known field
 * ({@link ConfigError} names the field and the file), and the family's defaults for omitted fields.
 * @module
 */
import { ConfigError } from "@prefkit/core";
import { FALLBACK_DEFAULTS, MODEL_CONFIG_DEFAULTS } from "./defaults.js";
import { CONFIG_NAME, GENERATION_CONFIG_NAME, type GenerationConfig, type PretrainedConfig } from "./schema.js";

/** Returns undefined if the value is valid, else a description of what was expected. */
type Check = (value: unknown) => string | undefined;

const intAtLeast =
  (min: number): Check =>
  (v) =>
    Number.isSafeInteger(v) && (v as number) >= min ? undefined : `an integer ≥ ${min}`;
const positiveNumber: Check = (v) =>
  typeof v === "number" && Number.isFinite(v) && v > 0 ? undefined : "a positive number";
const numberInRange =
  (min: number, max: number): Check =>
  (v) =>
    typeof v === "number" && v >= min && v <= max ? undefined : `a number in [${min}, ${max}]`;
const nonNegativeNumber: Check = (v) =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 ? undefined : "a non-negative number";
const string: Check = (v) => (typeof v === "string" ? undefined : "a string");
const boolean: Check = (v) => (typeof v === "boolean" ? undefined : "a boolean");
const stringArray: Check = (v) =>
  Array.isArray(v) && v.every((s) => typeof s === "string") ? undefined : "an array of strings";
const object: Check = (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? undefined : "an object");
const tokenIds: Check = (v) =>
  intAtLeast(0)(v) === undefined || (Array.isArray(v) && v.every((x) => intAtLeast(0)(x) === undefined))
    ? undefined
    : "a token id or an array of token ids";
const nullable =
  (check: Check): Check =>
  (v) => {
    if (v === null) return undefined;
    const expected = check(v);
    return expected === undefined ? undefined : `${expected} or null`;
  };

const MODEL_FIELDS: Readonly<Record<string, Check>> = {
  model_type: string,
  architectures: nullable(stringArray),
  vocab_size: intAtLeast(1),
  hidden_size: intAtLeast(1),
  intermediate_size: intAtLeast(1),
  num_hidden_layers: intAtLeast(1),
  num_attention_heads: intAtLeast(1),
  num_key_value_heads: intAtLeast(1),
  head_dim: nullable(intAtLeast(1)),
  hidden_act: string,
  rms_norm_eps: positiveNumber,
  rope_theta: positiveNumber,
  rope_scaling: nullable(object),
  max_position_embeddings: intAtLeast(1),
  tie_word_embeddings: boolean,
  attention_bias: boolean,
  mlp_bias: boolean,
  attention_dropout: numberInRange(0, 1),
  sliding_window: nullable(intAtLeast(1)),
  use_sliding_window: boolean,
  max_window_layers: intAtLeast(0),
  bos_token_id: nullable(intAtLeast(0)),
  eos_token_id: nullable(tokenIds),
  pad_token_id: nullable(intAtLeast(0)),
  torch_dtype: nullable(string),
  initializer_range: nonNegativeNumber,
  use_cache: boolean,
  transformers_version: string,
};

const ROPE_SCALING_FIELDS: Readonly<Record<string, Check>> = {
  rope_type: string,
  type: string,
  factor: positiveNumber,
  original_max_position_embeddings: intAtLeast(1),
  high_freq_factor: positiveNumber,
  low_freq_factor: positiveNumber,
};

const GENERATION_FIELDS: Readonly<Record<string, Check>> = {
  bos_token_id: nullable(intAtLeast(0)),
  eos_token_id: nullable(tokenIds),
  pad_token_id: nullable(intAtLeast(0)),
  max_new_tokens: nullable(intAtLeast(1)),
  max_length: intAtLeast(1),
  do_sample: boolean,
  temperature: nonNegativeNumber,
  top_k: intAtLeast(0),
  top_p: numberInRange(0, 1),
  repetition_penalty: positiveNumber,
};

function describeValue(v: unknown): string {
  const text = JSON.stringify(v);
  const shown = text === undefined ? String(v) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
  return `${shown} (${v === null ? "null" : Array.isArray(v) ? "array" : typeof v})`;
}

function checkFields(obj: Record<string, unknown>, fields: Readonly<Record<string, Check>>, file: string, prefix = "") {
  for (const [field, check] of Object.entries(fields)) {
    if (!Object.hasOwn(obj, field)) continue;
    const expected = check(obj[field]);
    if (expected !== undefined) {
      throw new ConfigError(`expected ${expected}, got ${describeValue(obj[field])}`, { file, field: prefix + field });
    }
  }
}

function asObject(json: unknown, file: string): Record<string, unknown> {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(`expected a JSON object, got ${describeValue(json)}`, { file });
  }
  return json as Record<string, unknown>;
}

/**
 * Check a parsed `config.json`, fill omitted fields with the family's defaults, and return it typed.
 * The input is not modified; unknown fields are kept.
 * @param json - the parsed JSON.
 * @param file - the file it came from, for error messages.
 * @returns the validated config.
 * @throws ConfigError naming the field and file on a missing structural field, a wrong type,
 *   or `num_attention_heads` not divisible by `num_key_value_heads`.
 */
export function validateModelConfig(json: unknown, file = CONFIG_NAME): PretrainedConfig {
  const obj = { ...asObject(json, file) };
  for (const field of [
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
  ]) {
    if (obj[field] === undefined) throw new ConfigError("required field is missing", { file, field });
  }
  checkFields(obj, MODEL_FIELDS, file);
  if (obj["rope_scaling"] != null)
    checkFields(obj["rope_scaling"] as object as Record<string, unknown>, ROPE_SCALING_FIELDS, file, "rope_scaling.");

  const family = obj["model_type"] as string;
  const defaults = Object.hasOwn(MODEL_CONFIG_DEFAULTS, family) ? MODEL_CONFIG_DEFAULTS[family]! : FALLBACK_DEFAULTS;
  for (const [field, value] of Object.entries(defaults)) {
    if (obj[field] !== undefined) continue;
    obj[field] = value === "num_attention_heads" ? obj["num_attention_heads"] : value;
  }
  const config = obj as PretrainedConfig;
  if (config.num_attention_heads % config.num_key_value_heads !== 0) {
    throw new ConfigError(
      `num_attention_heads (${config.num_attention_heads}) is not divisible by num_key_value_heads (${config.num_key_value_heads})`,
      { file, field: "num_key_value_heads" },
    );
  }
  if (config.head_dim == null && config.hidden_size % config.num_attention_heads !== 0) {
    throw new ConfigError(
      `hidden_size (${config.hidden_size}) is not divisible by num_attention_heads (${config.num_attention_heads}) and head_dim is not set`,
      { file, field: "hidden_size" },
    );
  }
  return config;
}

/**
 * Check a parsed `generation_config.json` and return it typed. Unknown fields are kept.
 * @param json - the parsed JSON.
 * @param file - the file it came from, for error messages.
 * @returns the validated generation config (a copy).
 * @throws ConfigError naming the field and file on a wrong type.
 */
export function validateGenerationConfig(json: unknown, file = GENERATION_CONFIG_NAME): GenerationConfig {
  const obj = { ...asObject(json, file) };
  checkFields(obj, GENERATION_FIELDS, file);
  return obj as GenerationConfig;
}
