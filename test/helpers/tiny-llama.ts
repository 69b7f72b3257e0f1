/**
 * The tiny random Llama the trainer tests share: 1 layer, a 16-token vocabulary, init std 0.2 (so the
 * model is not uniform at step 0). Build it with `AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed })`.
 */
export const TINY_LLAMA = {
  model_type: "llama",
  vocab_size: 16,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  tie_word_embeddings: false,
  initializer_range: 0.2,
} as const;

/** {@link TINY_LLAMA} with BOS 1 and EOS 2, for tests that generate. */
export const TINY_LLAMA_WITH_SPECIAL_TOKENS = { ...TINY_LLAMA, eos_token_id: 2, bos_token_id: 1 } as const;
