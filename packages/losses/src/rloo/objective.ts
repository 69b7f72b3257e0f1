/**
 * The `"rloo"` loss plugin, on GRPO's `"group-rollout"` batches.
 * @module
 */
import { defineLoss, tf } from "@prefkit/core";
import { clipRatioMetrics } from "../grpo/objective.js";
import type { RLOOConfig } from "./config.js";
import { rlooLoss } from "./loss.js";

/** The fields of an `RLOOConfig` the `"rloo"` loss reads. */
export type RLOOLossConfig = Pick<RLOOConfig, "epsilon" | "epsilonHigh">;

/**
 * The `"rloo"` loss (a `"group-rollout"` loss): {@link rlooLoss}, TRL's clipped SEQUENCE-level objective with
 * r = exp(Σ_t log πθ − Σ_t log π_old), mean over the micro-batch's completions, and its `clip_ratio/*` metrics
 * (shares of sequences). There is no KL term: RLOO puts β·KL into the reward.
 */
export const rlooObjective = defineLoss("rloo", "group-rollout", (x, config: RLOOLossConfig) => {
  const old = x.oldLogprobs === null ? null : (tf.sum(x.oldLogprobs, 1) as tf.Tensor1D);
  const out = rlooLoss(x.logprobs, old, x.advantages, x.mask, {
    epsilon: config.epsilon,
    epsilonHigh: config.epsilonHigh,
  });
  return { loss: out.loss, metrics: clipRatioMetrics(out.clipRatio) };
});
