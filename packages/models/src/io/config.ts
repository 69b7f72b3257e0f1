/**
 * Typed `config.json` and `generation_config.json` with Hugging Face field names.
 *
 * Known fields are type-checked ({@link ConfigError} names the field and the file); unknown
 * fields are kept as they are, so a config read and saved again round-trips.
 * @module
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "@prefkit/core";
import { readJsonFile } from "./json.js";

/** Name of the model config in a HF model directory. */
export const CONFIG_NAME = "config.json";
/** Name of the generation config in a HF model directory. */
export const GENERATION_CONFIG_NAME = "generation_config.json";

/** `rope_scaling` as written by transformers (Llama 3 style `"llama3"`, `"linear"`, `"dynamic"`, `"yarn"`, ...). */
export interface RopeScaling {
  /** Scaling method. Newer configs use `rope_type`. */
  rope_type?: string;
  /** Legacy name of `rope_type`. */
  type?: string;
  /** Scale factor on the context length. */
  factor?: number;
  /** Context length the model was pretrained with (Llama 3, YaRN). */
  original_max_position_embeddings?: number;
  /** Llama 3: wavelengths below `original / high_freq_factor` are kept. */
  high_freq_factor?: number;
  /** Llama 3: wavelengths above `original / low_freq_factor` are scaled by `factor`. */
  low_freq_factor?: number;
  /** Any other method-specific field, kept as is. */
  [key: string]: unknown;
}

/**
 * A decoder-only model config (`config.json`), with transformers' field names.
 *
 * The structural fields (`model_type`, `vocab_size`, `hidden_size`, `intermediate_size`,
 * `num_hidden_layers`, `num_attention_heads`) must be present. The other non-optional fields are
 * filled by {@link readModelConfig} with transformers' defaults for the family when absent (see
 * {@link MODEL_CONFIG_DEFAULTS}).
 */
export interface PretrainedConfig {
  /** Family, e.g. `"llama"`, `"qwen2"`, `"qwen3"`, `"mistral"`. */
  model_type: string;
  /** Class names, e.g. `["LlamaForCausalLM"]`. */
  architectures?: string[] | null;
  /** Vocabulary size (rows of the embedding). */
  vocab_size: number;
  /** Model width. */
  hidden_size: number;
  /** Width of the MLP's hidden layer. */
  intermediate_size: number;
  /** Number of decoder layers. */
  num_hidden_layers: number;
  /** Number of query heads. */
  num_attention_heads: number;
  /** Number of key/value heads (grouped-query attention); divides `num_attention_heads`. */
  num_key_value_heads: number;
  /** Per-head width. When absent or null, `hidden_size / num_attention_heads` (Qwen3's class default is 128). */
  head_dim?: number | null;
  /** MLP activation, e.g. `"silu"`. */
  hidden_act: string;
  /** Epsilon of RMSNorm. */
  rms_norm_eps: number;
  /** RoPE base frequency. */
  rope_theta: number;
  /** RoPE scaling, or null for none. */
  rope_scaling?: RopeScaling | null;
  /** Longest sequence the position embedding is meant for. */
  max_position_embeddings: number;
  /** Whether `lm_head` shares the embedding matrix (then the checkpoint has no `lm_head.weight`). */
  tie_word_embeddings: boolean;
  /** Bias on the q/k/v/o projections (Qwen2 has q/k/v bias through its own code, not this flag). */
  attention_bias?: boolean;
  /** Bias on the MLP projections. */
  mlp_bias?: boolean;
  /** Attention dropout probability. */
  attention_dropout?: number;
  /** Sliding-window size (Mistral, Qwen2), or null. */
  sliding_window?: number | null;
  /** Qwen2/Qwen3: whether the sliding window is used at all. */
  use_sliding_window?: boolean;
  /** Qwen2/Qwen3: layers below this index use full attention. */
  max_window_layers?: number;
  /** Beginning-of-sequence token id. */
  bos_token_id?: number | null;
  /** End-of-sequence token id(s). */
  eos_token_id?: number | number[] | null;
  /** Padding token id. */
  pad_token_id?: number | null;
  /** Dtype of the saved weights, e.g. `"float32"`, `"bfloat16"`. */
  torch_dtype?: string | null;
  /** Std of the weight initialisation. */
  initializer_range?: number;
  /** Whether the KV cache is used in generation. */
  use_cache?: boolean;
  /** transformers version that wrote the file. */
  transformers_version?: string;
  /** Unknown fields are kept as they are and written back on save. */
  [key: string]: unknown;
}

/** `generation_config.json`, with transformers' field names. Absent fields mean transformers' defaults ({@link GENERATION_CONFIG_DEFAULTS}). */
export interface GenerationConfig {
  /** Beginning-of-sequence token id. */
  bos_token_id?: number | null;
  /** Token id(s) that end generation. */
  eos_token_id?: number | number[] | null;
  /** Padding token id. */
  pad_token_id?: number | null;
  /** Maximum number of generated tokens (not counting the prompt). */
  max_new_tokens?: number | null;
  /** Maximum total length (prompt + generated). */
  max_length?: number;
  /** Sample (true) or decode greedily (false). */
  do_sample?: boolean;
  /** Softmax temperature for sampling. */
  temperature?: number;
  /** Keep the k most likely tokens when sampling (0 disables). */
  top_k?: number;
  /** Nucleus sampling: keep the smallest set with cumulative probability ≥ top_p. */
  top_p?: number;
  /** Penalty on repeated tokens (1 disables). */
  repetition_penalty?: number;
  /** Unknown fields are kept as they are. */
  [key: string]: unknown;
}

/**
 * `config.json` fields that transformers' configs type as `float`. They are written with a decimal point even
 * when integral (`"rope_theta": 10000.0`, `"factor": 8.0`), as Python writes a float: transformers warns that
 * Llama 3's `rope_scaling` factor "must be a float" when it reads `8`.
 */
export const CONFIG_FLOAT_FIELDS: readonly string[] = Object.freeze([
  "rms_norm_eps",
  "layer_norm_eps",
  "rope_theta",
  "initializer_range",
  "attention_dropout",
  "hidden_dropout",
  "partial_rotary_factor",
  "router_aux_loss_coef",
  "rope_scaling.factor",
  "rope_scaling.low_freq_factor",
  "rope_scaling.high_freq_factor",
  "rope_scaling.attention_factor",
  "rope_scaling.beta_fast",
  "rope_scaling.beta_slow",
  "rope_scaling.mscale",
  "rope_scaling.mscale_all_dim",
  "rope_scaling.short_factor",
  "rope_scaling.long_factor",
  "rope_scaling.short_mscale",
  "rope_scaling.long_mscale",
  "temperature",
  "top_p",
  "typical_p",
  "repetition_penalty",
  "length_penalty",
  "diversity_penalty",
]);

/** `generation_config.json` fields transformers' `GenerationConfig` types as `float` (see {@link CONFIG_FLOAT_FIELDS}). */
export const GENERATION_CONFIG_FLOAT_FIELDS: readonly string[] = Object.freeze([
  "temperature",
  "top_p",
  "min_p",
  "typical_p",
  "epsilon_cutoff",
  "eta_cutoff",
  "diversity_penalty",
  "repetition_penalty",
  "encoder_repetition_penalty",
  "length_penalty",
  "guidance_scale",
]);

/** transformers' `GenerationConfig` defaults for the fields above. */
export const GENERATION_CONFIG_DEFAULTS = Object.freeze({
  max_length: 20,
  do_sample: false,
  temperature: 1.0,
  top_k: 50,
  top_p: 1.0,
  repetition_penalty: 1.0,
});

/** Fields {@link readModelConfig} fills when a config omits them. */
export type ModelConfigDefaults = Pick<
  PretrainedConfig,
  "hidden_act" | "rms_norm_eps" | "rope_theta" | "max_position_embeddings" | "tie_word_embeddings"
> & {
  /** A number, or `"num_attention_heads"` to copy that field. */
  num_key_value_heads: number | "num_attention_heads";
};

/**
 * transformers' class defaults (v4.52) per `model_type`, used for fields a config omits.
 * Other families get the `llama` values except `tie_word_embeddings: true` (the `PretrainedConfig` default).
 */
export const MODEL_CONFIG_DEFAULTS: Readonly<Record<string, Readonly<ModelConfigDefaults>>> = Object.freeze({
  llama: {
    num_key_value_heads: "num_attention_heads",
    hidden_act: "silu",
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    max_position_embeddings: 2048,
    tie_word_embeddings: false,
  },
  mistral: {
    num_key_value_heads: 8,
    hidden_act: "silu",
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    max_position_embeddings: 131072,
    tie_word_embeddings: false,
  },
  qwen2: {
    num_key_value_heads: 32,
    hidden_act: "silu",
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    max_position_embeddings: 32768,
    tie_word_embeddings: false,
  },
  qwen3: {
    num_key_value_heads: 32,
    hidden_act: "silu",
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    max_position_embeddings: 32768,
    tie_word_embeddings: false,
  },
});

const FALLBACK_DEFAULTS: ModelConfigDefaults = { ...MODEL_CONFIG_DEFAULTS["llama"]!, tie_word_embeddings: true };

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

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Read `config.json` from a model directory (or a path to the JSON file itself).
 * @param dirOrFile - the model directory or the config file.
 * @returns the validated config with family defaults filled in (see {@link validateModelConfig}).
 * @throws ConfigError naming the file (and field) if it is missing, not JSON, or invalid.
 */
export async function readModelConfig(dirOrFile: string): Promise<PretrainedConfig> {
  const file = (await isDirectory(dirOrFile)) ? join(dirOrFile, CONFIG_NAME) : dirOrFile;
  return validateModelConfig(await readJsonFile(file, "config"), file);
}

/**
 * Read `generation_config.json` from a model directory (or a path to the file itself).
 * @param dirOrFile - the model directory or the generation config file.
 * @returns the validated config, or `undefined` if the file does not exist.
 * @throws ConfigError naming the file (and field) if it is not JSON or invalid.
 */
export async function readGenerationConfig(dirOrFile: string): Promise<GenerationConfig | undefined> {
  const file = (await isDirectory(dirOrFile)) ? join(dirOrFile, GENERATION_CONFIG_NAME) : dirOrFile;
  try {
    await stat(file);
  } catch {
    return undefined;
  }
  return validateGenerationConfig(await readJsonFile(file, "config"), file);
}
