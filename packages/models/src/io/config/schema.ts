/**
 * Typed `config.json` and `generation_config.json` with Hugging Face field names, and the files' names.
 *
 * Known fields are type-checked when read (see `validate.ts`); unknown fields are kept as they are, so a
 * config read and saved again round-trips.
 * @module
 */

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
