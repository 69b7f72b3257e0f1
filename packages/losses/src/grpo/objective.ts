/**
 * The `"group-rollout"` batch kind (GRPO's and RLOO's micro-batches) and the `"grpo"` loss plugin on it.
 * @module
 */
import { defineLoss, type tf } from "@prefkit/core";
import type { GRPOConfig } from "./config.js";
import { type ClipRatios, type GRPOLossType, grpoLoss } from "./loss.js";

/**
 * The inputs of a loss on group rollouts (`"group-rollout"` batches): one micro-batch of a GRPO or RLOO
 * update, `[b, W]` over the completion positions. Every per-token tensor is 0 where `mask` is 0 (padding,
 * and truncated completions under `maskTruncatedCompletions`), so a loss may take exp of differences there.
 */
export interface GroupRolloutInputs {
  /** log πθ of the sampled completion tokens, temperature-scaled (differentiable). */
  logprobs: tf.Tensor2D;
  /**
   * log π_old: the log-probs the rollout was sampled with; `null` when each rollout is used once
   * (`numIterations` 1), where π_old is πθ detached (ratio 1, TRL's shortcut).
   */
  oldLogprobs: tf.Tensor2D | null;
  /** log πref, same scaling; `null` when β = 0 (no reference). */
  refLogprobs: tf.Tensor2D | null;
  /** One advantage per completion, `[b]`. */
  advantages: tf.Tensor1D;
  /** 1 on the completion tokens the loss counts. */
  mask: tf.Tensor2D;
}

declare module "@prefkit/core" {
  interface LossInputsByKind {
    /** GRPO and RLOO micro-batches: {@link GroupRolloutInputs}, added by `@prefkit/losses`. */
    "group-rollout": GroupRolloutInputs;
  }
}

/** The fields of a `GRPOConfig` the `"grpo"` loss reads. */
export type GRPOLossConfig = Pick<
  GRPOConfig,
  "beta" | "epsilon" | "epsilonHigh" | "delta" | "lossType" | "maxCompletionLength"
>;

/**
 * The `"grpo"` loss (a `"group-rollout"` loss): {@link grpoLoss} with the config's β, clipping and aggregation
 * (`lossType`), and TRL's metrics `clip_ratio/low_mean`, `clip_ratio/high_mean`, `clip_ratio/region_mean`, plus
 * `kl` when β ≠ 0. The loss is that of one micro-batch; the trainer weights micro-batches equally, and by their
 * valid tokens under `"dapo"` (the GRPO task's `batchWeight`), which makes the optimizer step's loss TRL's.
 */
export const grpoObjective = defineLoss("grpo", "group-rollout", (x, config: GRPOLossConfig) => {
  const out = grpoLoss(x.logprobs, x.oldLogprobs, x.refLogprobs, x.advantages, x.mask, {
    beta: config.beta,
    epsilon: config.epsilon,
    epsilonHigh: config.epsilonHigh,
    delta: config.delta,
    lossType: config.lossType as GRPOLossType,
    maxCompletionLength: config.maxCompletionLength,
  });
  return {
    loss: out.loss,
    metrics: { ...clipRatioMetrics(out.clipRatio), ...(out.kl !== undefined ? { kl: out.kl } : {}) },
  };
});

/** TRL's `clip_ratio/low_mean`, `clip_ratio/high_mean` and `clip_ratio/region_mean` of GRPO and RLOO. */
export function clipRatioMetrics(clip: ClipRatios): Record<string, tf.Scalar> {
  return {
    "clip_ratio/low_mean": clip.lowMean,
    "clip_ratio/high_mean": clip.highMean,
    "clip_ratio/region_mean": clip.regionMean,
  };
}
