import type { Loss, LossFactory, LossOutput, PairScoreInputs } from "@prefkit/core";
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

/** Output of the reward {@link Loss}: {@link RewardLossOutput} (its metrics are TRL's reward-model ones). */
export type RewardLoss = Loss<PairScoreInputs, RewardLossOutput>;

/**
 * The reward-model {@link Loss} registered as `"reward"` (a `"pair-scores"` loss), configured from a
 * `RewardConfig`-like object: {@link rewardLoss} on the classifier's scores with the dataset's margins.
 */
export const createRewardLoss: LossFactory<
  { centerRewardsCoefficient?: number | null },
  PairScoreInputs,
  RewardLossOutput
> = (config = {}) => ({
  name: "reward",
  batchKind: "pair-scores",
  compute: (inputs: PairScoreInputs) =>
    rewardLoss(inputs.chosenScores, inputs.rejectedScores, {
      margin: inputs.margins,
      centerRewardsCoefficient: config.centerRewardsCoefficient ?? null,
    }),
});
