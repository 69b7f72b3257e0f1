import { tf } from "@prefkit/core";
import { checkNumber } from "../common/checks.js";
import { asFloatTensor, stopGradient, type TensorInput } from "../dpo/tensor-input.js";
import { type ClipRange, type ClipRatios, clipBounds, clippedSurrogate } from "../grpo/loss.js";
import { checkGroups, groupsOf, isZeroStd, mean, unbiasedStd } from "../grpo/stats.js";
import { klPenalty } from "../ppo/kl.js";

/** Options of {@link rlooAdvantages}. */
export interface RLOOAdvantageOptions {
  /** Normalise the advantages over the batch: (A − mean)/(std + 1e-4) (TRL `normalize_advantages`, default false). */
  normalize?: boolean;
}

/** What {@link rlooAdvantages} returns, in row order. */
export interface RLOOAdvantageResult {
  /** A = R − baseline (normalised if asked), shape [B]. */
  advantages: number[];
  /** The leave-one-out baseline of each row: the mean of the other k − 1 rewards of its group. */
  baselines: number[];
  /** Share of groups whose rewards have zero std (TRL `frac_reward_zero_std`). */
  fracRewardZeroStd: number;
}

/** Options of {@link rlooShapeRewards}. */
export interface RLOORewardShapingOptions {
  /** β of the sequence-level KL subtracted from the reward (TRL RLOO default 0.05; 0 = no shaping). */
  beta?: number;
  /** Clamp the rewards to [min, max] BEFORE the KL is subtracted (TRL `reward_clip_range`, default none). */
  rewardClipRange?: readonly [number, number] | null;
}

/** What {@link rlooShapeRewards} returns. */
export interface RLOOShapedRewards {
  /** R − β·Σ_t(log π_old − log πref) per completion (after the optional clamp). */
  rewards: number[];
  /** Σ_t(log π_old − log πref) over each completion's valid tokens (the k1 KL of the sequence). */
  sequenceKl: number[];
  /** Mean k1 KL over all valid tokens of the batch (TRL's `kl` metric for RLOO). */
  kl: number;
}

/** Options of {@link rlooLoss}: the clipping bounds (TRL RLOO: ε 0.2, ε_high = ε). */
export type RLOOLossOptions = ClipRange;

/** What {@link rlooLoss} returns: new tensors, owned by the caller. */
export interface RLOOLossResult {
  /** Mean over sequences of the clipped sequence-level surrogate; differentiable with respect to `logps`. */
  loss: tf.Scalar;
  /** −min(r·A, clip(r)·A) per sequence, [B]. */
  perSequenceLoss: tf.Tensor1D;
  /** Shares of SEQUENCES whose ratio was clipped (TRL RLOO's `clip_ratio/*`, plain means over rows). */
  clipRatio: ClipRatios;
}

/**
 * RLOO's reward shaping, as TRL's `RLOOTrainer._generate_and_score_completions`: the (weighted, summed) rewards
 * are clamped to `rewardClipRange` when given, then, with β ≠ 0, the sequence-level k1 KL
 * Σ_t (log π_old − log πref) over each completion's valid tokens is subtracted times β. The KL uses the
 * log-probs at sampling time, so it carries no gradient; it is read back to plain numbers.
 *
 * @param rewards one reward per completion, [B] (e.g. from `weightedRewardSum`)
 * @param oldLogps per-token log-probs at sampling time, [B, T]
 * @param refLogps per-token reference log-probs, [B, T]
 * @param mask 1 for valid completion tokens, [B, T]
 * @param options β and the optional clamp
 */
export function rlooShapeRewards(
  rewards: readonly number[],
  oldLogps: TensorInput,
  refLogps: TensorInput,
  mask: TensorInput,
  options: RLOORewardShapingOptions = {},
): RLOOShapedRewards {
  const beta = options.beta ?? 0.05;
  checkNumber("beta", beta, (v) => v >= 0, "a number >= 0");
  const range = options.rewardClipRange ?? null;
  const clamped = range === null ? rewards : rewards.map((r) => Math.min(Math.max(r, range[0]), range[1]));
  const [sequenceKl, kl] = tf.tidy(() => {
    const m = asFloatTensor(mask);
    const perTokenKl = tf.mul(klPenalty(oldLogps, refLogps, "k1"), m);
    const tokenMean = tf.div(tf.sum(perTokenKl), tf.maximum(tf.sum(m), 1));
    return [Array.from(tf.sum(perTokenKl, 1).dataSync()), tokenMean.dataSync()[0]!] as const;
  });
  return {
    rewards: clamped.map((r, i) => (beta === 0 ? r : r - beta * sequenceKl[i]!)),
    sequenceKl,
    kl,
  };
}

/**
 * RLOO's leave-one-out advantages, as TRL's `RLOOTrainer`: rows of one prompt are consecutive, k =
 * `numGenerations` per group; each row's baseline is the mean of the OTHER k − 1 rewards of its group,
 * A = R − baseline, optionally normalised over the batch with (A − mean)/(std + 1e-4) (unbiased std).
 * With k = 1 the advantages are 0, as TRL does in evaluation.
 *
 * @param rewards the final reward per completion, [B] (after {@link rlooShapeRewards} when β ≠ 0)
 * @param numGenerations completions per prompt (k); must divide B
 * @param options batch normalisation
 * @throws ConfigError when `numGenerations` does not divide B
 */
export function rlooAdvantages(
  rewards: readonly number[],
  numGenerations: number,
  options: RLOOAdvantageOptions = {},
): RLOOAdvantageResult {
  checkGroups(rewards.length, numGenerations);
  const groups = groupsOf(rewards, numGenerations);
  const baselines = groups.flatMap((g) => {
    const total = g.reduce((a, b) => a + b, 0);
    return g.map((r) => (numGenerations > 1 ? (total - r) / (numGenerations - 1) : r));
  });
  let advantages = rewards.map((r, i) => (numGenerations > 1 ? r - baselines[i]! : 0));
  if (options.normalize) {
    const m = mean(advantages);
    const s = unbiasedStd(advantages);
    advantages = advantages.map((a) => (a - m) / (s + 1e-4));
  }
  const zeroStd = groups.map((g) => (numGenerations > 1 && !isZeroStd(unbiasedStd(g)) ? 0 : 1));
  return { advantages, baselines, fracRewardZeroStd: mean(zeroStd) };
}

/**
 * RLOO's sequence-level clipped loss, as TRL's `RLOOTrainer._compute_loss`: r = exp(Σ_t log πθ − Σ_t log π_old)
 * over each completion's valid tokens, −min(r·A, clip(r, 1 − ε, 1 + ε_high)·A) per sequence, mean over
 * sequences. There is no KL term in the loss (RLOO puts it in the reward, see {@link rlooShapeRewards}).
 *
 * @param logps per-token log πθ of the completion tokens, [B, T]
 * @param oldLogps Σ_t log π_old per completion at sampling time, [B], or null to use Σ_t log πθ detached
 * @param advantages one per completion, [B]
 * @param mask 1 for valid completion tokens, [B, T]
 * @param options ε and ε_high
 * @returns new tensors owned by the caller; the inputs are not disposed
 */
export function rlooLoss(
  logps: TensorInput,
  oldLogps: TensorInput | null,
  advantages: TensorInput,
  mask: TensorInput,
  options: RLOOLossOptions = {},
): RLOOLossResult {
  const bounds = clipBounds(options);
  return tf.tidy(() => {
    const sequenceLogps = tf.sum(tf.mul(asFloatTensor(logps), asFloatTensor(mask)), 1);
    const old = oldLogps === null ? stopGradient(sequenceLogps) : asFloatTensor(oldLogps);
    const surrogate = clippedSurrogate(tf.sub(sequenceLogps, old), asFloatTensor(advantages), bounds);
    return {
      loss: tf.mean(surrogate.loss) as tf.Scalar,
      perSequenceLoss: surrogate.loss as tf.Tensor1D,
      clipRatio: {
        lowMean: tf.mean(surrogate.lowClipped) as tf.Scalar,
        highMean: tf.mean(surrogate.highClipped) as tf.Scalar,
        regionMean: tf.mean(tf.add(surrogate.lowClipped, surrogate.highClipped)) as tf.Scalar,
      },
    };
  });
}
