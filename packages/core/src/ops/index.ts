/**
 * Differentiable tensor ops shared by every trainer: fused selective log-probabilities, and the
 * chunked LM head + log-probs that never materialises vocabulary-sized logits.
 * @module
 */
export * from "./logprobs.js";
export * from "./fused-head.js";
