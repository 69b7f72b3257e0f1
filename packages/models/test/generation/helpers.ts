/** Tiny random models of every family, with every weight (biases, norms) randomised. */
import { Rng, tf } from "@prefkit/core";
import { PreTrainedModelForCausalLM } from "@prefkit/models";

const BASE = {
  vocab_size: 61,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  bos_token_id: 1,
  eos_token_id: 2,
};

/** One config per decoder feature the cache must respect. */
export const FAMILIES: Record<string, Record<string, unknown>> = {
  llama_gqa: { ...BASE, model_type: "llama", tie_word_embeddings: false },
  llama3_rope: {
    ...BASE,
    model_type: "llama",
    tie_word_embeddings: false,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8,
    },
  },
  qwen2_bias: { ...BASE, model_type: "qwen2", tie_word_embeddings: true, sliding_window: 3, use_sliding_window: false },
  qwen3_qknorm: { ...BASE, model_type: "qwen3", head_dim: 16, tie_word_embeddings: true },
  mistral_window3: { ...BASE, model_type: "mistral", num_key_value_heads: 1, sliding_window: 3 },
  smollm_tied: {
    ...BASE,
    model_type: "llama",
    num_attention_heads: 4,
    num_key_value_heads: 1,
    tie_word_embeddings: true,
  },
};

/**
 * A model whose weights are all far from their init (biases ≠ 0, norm scales ≠ 1), so every
 * flag changes the logits, and large enough that greedy choices have clear margins.
 */
export function randomModel(config: Record<string, unknown>, seed = 0): PreTrainedModelForCausalLM {
  const model = PreTrainedModelForCausalLM.fromConfig(config, { seed });
  const rng = new Rng(seed + 1000);
  for (const [name, v] of model.namedParameters()) {
    const data = new Float32Array(v.size);
    const isNorm = name.endsWith("norm.weight");
    for (let i = 0; i < data.length; i++) data[i] = isNorm ? 1 + 0.3 * rng.normal() : 0.3 * rng.normal();
    const t = tf.tensor(data, v.shape);
    v.assign(t);
    t.dispose();
  }
  return model;
}

/** Random ids in [3, vocab). */
export function randomIds(rows: number, cols: number, vocab: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => 3 + rng.int(vocab - 3)));
}
