/**
 * The config fields transformers types as `float`: written with a decimal point even when integral, as
 * Python writes a float (see `stringifyJson`'s `floatFields`).
 * @module
 */

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
