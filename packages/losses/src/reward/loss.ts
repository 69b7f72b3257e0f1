import type { Loss, LossFactory, LossOutput } from "@prefkit/core";
import { tf } from "@prefkit/core";
import { asFloatTensor, logSigmoid, type TensorInput } from "../dpo/tensor-input.js";

/** Options of {@link rewardLoss}. */
export interface RewardLossOptions {
  /** Per-pair margin (a number, or a [B] column as in TRL's `margin` dataset column); default none. */
  margin?: TensorInput | null;
  /** Weight of mean((r_c + r_r)²); `null`/omitted disables the centring term. */
  centerRewardsCoefficient?: number | null;
}

/** TRL's reward-modelling metric names, as produced by {@link rewardLoss}. */
export const REWARD_METRIC_NAMES = ["accuracy", "margin", "min_reward", "mean_reward", "max_reward"] as const;

/** Output of {@link rewardLoss}: new tensors owned by the caller. */
export interface RewardLossOutput extends LossOutput {
  /**
   * `accuracy` = mean[r_c > r_r], `margin` = mean(r_c − r_r), and the min/mean/max over all chosen and
   * rejected rewards of the batch.
   */
  metrics: Record<(typeof REWARD_METRIC_NAMES)[number], tf.Scalar>;
}

/**
 * The Bradley–Terry reward-model loss of TRL's `RewardTrainer`:
 * mean(−log σ(r_c − r_r − margin)) + coef · mean((r_c + r_r)²).
 * Differentiable; safe inside `tf.variableGrads`. Inputs are not disposed.
 *
 * @param chosenRewards scores of the chosen sequences, shape [B]
 * @param rejectedRewards scores of the rejected sequences, shape [B]
 * @param options optional margin column and centring coefficient
 */
export function rewardLoss(
  chosenRewards: TensorInput,
  rejectedRewards: TensorInput,
  options: RewardLossOptions = {},
): RewardLossOutput {
  return tf.tidy(() => {
    const rc = asFloatTensor(chosenRewards);
    const rr = asFloatTensor(rejectedRewards);
    const diff = tf.sub(rc, rr);
    const logits = options.margin == null ? diff : tf.sub(diff, asFloatTensor(options.margin));
    let loss = tf.neg(tf.mean(logSigmoid(logits)));
    const coef = options.centerRewardsCoefficient;
    if (coef != null) loss = tf.add(loss, tf.mul(tf.mean(tf.square(tf.add(rc, rr))), coef));
    const all = tf.concat([tf.reshape(rc, [-1]), tf.reshape(rr, [-1])]);
    return {
      loss: loss as tf.Scalar,
      metrics: {
        accuracy: tf.mean(tf.step(diff)) as tf.Scalar,
        margin: tf.mean(diff) as tf.Scalar,
        min_reward: tf.min(all) as tf.Scalar,
        mean_reward: tf.mean(all) as tf.Scalar,
        max_reward: tf.max(all) as tf.Scalar,
      },
    };
  });
}

/** Inputs of the reward {@link Loss}: the scores of one batch of pairs and an optional margin column. */
export interface RewardLossInputs {
  /** Scores of the chosen sequences, shape [B]. */
  chosenRewards: TensorInput;
  /** Scores of the rejected sequences, shape [B]. */
  rejectedRewards: TensorInput;
  /** Optional per-pair margin, shape [B]. */
  margin?: TensorInput | null;
}

/** A reward-model {@link Loss} named `"reward"`, configured from a `RewardConfig`-like object. */
export const createRewardLoss: LossFactory<
  { centerRewardsCoefficient?: number | null },
  RewardLossInputs,
  RewardLossOutput
> = (config = {}) => ({
  name: "reward",
  compute: (inputs: RewardLossInputs) =>
    rewardLoss(inputs.chosenRewards, inputs.rejectedRewards, {
      margin: inputs.margin ?? null,
      centerRewardsCoefficient: config.centerRewardsCoefficient ?? null,
    }),
});
