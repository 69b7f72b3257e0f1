/**
 * Differentiable tensor ops shared by every trainer: fused selective log-probabilities.
 * @module
 */
export * from "./logprobs.js";
