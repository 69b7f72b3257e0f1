/**
 * From a rollout to training targets (TRL PPOv2, steps 6–7 of trl-parity.md): per-token KL penalty,
 * the score added at the end of each response, optional reward whitening, GAE, returns, and whitened
 * advantages.
 * @module
 */
import { tf } from "@prefkit/core";
import { gae, whiten } from "./advantages.js";
import { type KLEstimator, klPenalty } from "./kl.js";
import type { Rollout } from "./rollout.js";

/** Options of {@link computeAdvantages}. */
export interface AdvantageOptions {
  /** β of −β·KL (the KL controller's current value). */
  klCoef: number;
  /** `k1` or `k3`. */
  klEstimator: KLEstimator;
  /** Discount γ. */
  gamma: number;
  /** GAE λ. */
  lam: number;
  /** Whiten the per-token rewards (over `maskP1`, mean kept) before GAE. */
  whitenRewards: boolean;
}

/** Training targets of a rollout, `[B, W]` plain arrays, plus the per-row objective terms. */
export interface AdvantageResult {
  /** 1 on valid response tokens (TRL `~padding_mask`). */
  mask: number[][];
  /** 1 on valid tokens and the one after (TRL `~padding_mask_p1`): where values, rewards and the value loss live. */
  maskP1: number[][];
  /** Per-token KL estimate (0 on padding). */
  kl: number[][];
  /** −β·KL per token. */
  nonScoreReward: number[][];
  /** Per-token rewards (−β·KL plus the score at the end), whitened if asked. */
  rewards: number[][];
  /** Whitened advantages over valid tokens, 0 elsewhere. */
  advantages: number[][];
  /** A + V (raw advantages). */
  returns: number[][];
}

/**
 * TRL's reward shaping and GAE. The score goes to position `validLength` (one past the last valid token,
 * where V is still trained) when it fits in the width, else to the last valid token, exactly as TRL's
 * `actual_end`; the KL there is 0 because both log-probs hold the same fill value.
 */
export function computeAdvantages(rollout: Rollout, options: AdvantageOptions): AdvantageResult {
  const { width, validLengths, scores } = rollout;
  const rows = validLengths.length;
  const mask = validLengths.map((n) => Array.from({ length: width }, (_, t) => (t < n ? 1 : 0)));
  const maskP1 = validLengths.map((n) => Array.from({ length: width }, (_, t) => (t <= n ? 1 : 0)));
  return tf.tidy(() => {
    const klT = klPenalty(rollout.logprobs, rollout.refLogprobs, options.klEstimator);
    const nonScoreT = tf.mul(klT, -options.klCoef);
    const end = validLengths.map((n) => (n < width ? n : n - 1));
    const bonus = tf.tensor2d(
      end.flatMap((e, i) => Array.from({ length: width }, (_, t) => (t === e ? scores[i]! : 0))),
      [rows, width],
    );
    let rewardsT: tf.Tensor = tf.add(nonScoreT, bonus);
    const maskP1T = tf.tensor2d(maskP1.flat(), [rows, width]);
    const maskT = tf.tensor2d(mask.flat(), [rows, width]);
    if (options.whitenRewards) rewardsT = tf.mul(whiten(rewardsT, maskP1T, false), maskP1T);
    const { advantages, returns } = gae(rewardsT, rollout.values, maskP1T, { gamma: options.gamma, lam: options.lam });
    const whitened = tf.mul(whiten(advantages, maskT), maskT);
    return {
      mask,
      maskP1,
      kl: klT.arraySync() as number[][],
      nonScoreReward: nonScoreT.arraySync() as number[][],
      rewards: rewardsT.arraySync() as number[][],
      advantages: whitened.arraySync() as number[][],
      returns: returns.arraySync() as number[][],
    };
  });
}
