/**
 * transformers' class defaults for the fields a `config.json` or `generation_config.json` may omit.
 * @module
 */
import type { PretrainedConfig } from "./schema.js";

/** transformers' `GenerationConfig` defaults for the generation fields prefkit types. */
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

/** Defaults of a family {@link MODEL_CONFIG_DEFAULTS} does not list. */
export const FALLBACK_DEFAULTS: ModelConfigDefaults = { ...MODEL_CONFIG_DEFAULTS["llama"]!, tie_word_embeddings: true };
