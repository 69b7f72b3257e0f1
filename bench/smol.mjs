// The workload model of the benches: HuggingFaceTB/SmolLM-135M's shape (its config.json) with random
// weights and a chosen number of layers (30 is SmolLM-135M itself).

import { Rng, tf } from "@prefkit/core";

/** SmolLM-135M's config with `layers` decoder layers. */
export function smolConfig(layers = 30) {
  return {
    model_type: "llama",
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: layers,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    rope_theta: 100000,
    rms_norm_eps: 1e-5,
    initializer_range: 0.02,
    max_position_embeddings: 2048,
    tie_word_embeddings: true,
  };
}

/**
 * The benches' token batch: `rows` × `seqLen` random ids in [3, vocab) (seeded, row-major) and the
 * completion mask (1 from position `prompt` on), as int32 tensors the caller disposes.
 */
export function randomBatch({ rows, seqLen, prompt, vocab, seed = 1 }) {
  const rng = new Rng(seed);
  const ids = tf.tensor2d(
    Array.from({ length: rows * seqLen }, () => 3 + rng.int(vocab - 3)),
    [rows, seqLen],
    "int32",
  );
  const completion = tf.tensor2d(
    Array.from({ length: rows * seqLen }, (_, i) => (i % seqLen >= prompt ? 1 : 0)),
    [rows, seqLen],
    "int32",
  );
  return { ids, completion };
}
