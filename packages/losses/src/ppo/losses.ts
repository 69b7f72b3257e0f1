/**
 * PPO's clipped policy and value losses (TRL PPOv2, step 8 of trl-parity.md) and the `"ppo"` loss plugin
 * built on them, with the `"rollout"` batch kind it trains on.
 * @module
 */
import { defineLoss, tf } from "@prefkit/core";
import { asFloatTensor, type TensorInput } from "../dpo/tensor-input.js";
import { maskedMean } from "./advantages.js";

/** Output of {@link ppoPolicyLoss}: new scalars owned by the caller. */
export interface PPOPolicyLossOutput {
  /** masked mean of max(−A·r, −A·clip(r, 1 − c, 1 + c)); the differentiable policy-gradient loss. */
  loss: tf.Scalar;
  /** Fraction of valid tokens where the clipped term is strictly larger (`policy/clipfrac_avg`). */
  clipfrac: tf.Scalar;
  /**
   * 0.5·mean((log π_new − log π_old)²) (`policy/approxkl_avg`). As in TRL the mean runs over all
   * [B, T] positions, with padded positions counting as a difference of 0.
   */
  approxkl: tf.Scalar;
  /** mean(r) over all positions, padded ones counting as r = 1, as TRL's `val/ratio`. */
  ratioMean: tf.Scalar;
  /** Smallest ratio over valid tokens. */
  ratioMin: tf.Scalar;
  /** Largest ratio over valid tokens. */
  ratioMax: tf.Scalar;
}

/**
 * PPO's clipped surrogate policy loss, as in TRL's PPOv2 trainer, with r = exp(log π_new − log π_old).
 * Differentiable with respect to `newLogprobs`; inputs are not disposed.
 *
 * @param newLogprobs log-probs of the sampled tokens under the current policy, [B, T]
 * @param oldLogprobs log-probs at sampling time, [B, T]
 * @param advantages (whitened) advantages, [B, T]
 * @param mask 1 for valid response tokens, [B, T]
 * @param cliprange c (TRL `cliprange`, 0.2)
 */
export function ppoPolicyLoss(
  newLogprobs: TensorInput,
  oldLogprobs: TensorInput,
  advantages: TensorInput,
  mask: TensorInput,
  cliprange = 0.2,
): PPOPolicyLossOutput {
  return tf.tidy(() => {
    const m = asFloatTensor(mask);
    const a = asFloatTensor(advantages);
    // TRL fills padded log-probs with the same constant in both, so their difference is 0 there.
    const logRatio = tf.mul(tf.sub(asFloatTensor(newLogprobs), asFloatTensor(oldLogprobs)), m);
    const ratio = tf.exp(logRatio);
    const unclipped = tf.mul(tf.neg(a), ratio);
    const clipped = tf.mul(tf.neg(a), tf.clipByValue(ratio, 1 - cliprange, 1 + cliprange));
    const validRatios = tf.add(tf.mul(ratio, m), tf.mul(tf.sub(1, m), 1e30));
    const validRatiosHigh = tf.sub(tf.mul(ratio, m), tf.mul(tf.sub(1, m), 1e30));
    return {
      loss: maskedMean(tf.maximum(unclipped, clipped), m),
      clipfrac: maskedMean(tf.step(tf.sub(clipped, unclipped)), m),
      approxkl: tf.mul(tf.mean(tf.square(logRatio)), 0.5) as tf.Scalar,
      ratioMean: tf.mean(ratio) as tf.Scalar,
      ratioMin: tf.min(validRatios) as tf.Scalar,
      ratioMax: tf.max(validRatiosHigh) as tf.Scalar,
    };
  });
}

/** Output of {@link ppoValueLoss}: new scalars owned by the caller. */
export interface PPOValueLossOutput {
  /** 0.5 · masked mean of max((V − R)², (clip(V, V_old ± c) − R)²); differentiable. */
  loss: tf.Scalar;
  /** Fraction of valid tokens where the clipped error is strictly larger (`val/clipfrac_avg`). */
  clipfrac: tf.Scalar;
}

/**
 * PPO's clipped value loss, as in TRL's PPOv2 trainer. Differentiable with respect to `newValues`;
 * inputs are not disposed.
 *
 * @param newValues current value predictions, [B, T]
 * @param oldValues value predictions at rollout time, [B, T]
 * @param returns GAE returns, [B, T]
 * @param mask 1 for valid positions, [B, T]
 * @param cliprangeValue c (TRL `cliprange_value`, 0.2)
 */
export function ppoValueLoss(
  newValues: TensorInput,
  oldValues: TensorInput,
  returns: TensorInput,
  mask: TensorInput,
  cliprangeValue = 0.2,
): PPOValueLossOutput {
  return tf.tidy(() => {
    const m = asFloatTensor(mask);
    const v = asFloatTensor(newValues);
    const old = asFloatTensor(oldValues);
    const ret = asFloatTensor(returns);
    const vClipped = tf.minimum(tf.maximum(v, tf.sub(old, cliprangeValue)), tf.add(old, cliprangeValue));
    const unclipped = tf.square(tf.sub(v, ret));
    const clipped = tf.square(tf.sub(vClipped, ret));
    return {
      loss: tf.mul(maskedMean(tf.maximum(unclipped, clipped), m), 0.5) as tf.Scalar,
      clipfrac: maskedMean(tf.step(tf.sub(clipped, unclipped)), m),
    };
  });
}

/**
 * The inputs of a loss on on-policy rollouts (`"rollout"` batches): one micro-batch of a PPO update, `[b, W]`
 * over the response positions. The PPO task computes them from the rollout, its advantages and one
 * policy + value forward (inside the gradient tape).
 */
export interface RolloutInputs {
  /** log π_θ of the sampled response tokens, temperature-scaled (differentiable). */
  logprobs: tf.Tensor2D;
  /** log π_old at sampling time, temperature-scaled. */
  oldLogprobs: tf.Tensor2D;
  /** Whitened advantages (0 past each response). */
  advantages: tf.Tensor2D;
  /** 1 on valid response tokens (TRL `~padding_mask`). */
  mask: tf.Tensor2D;
  /** V_θ before each response token, 0 outside `valueMask` (differentiable). */
  values: tf.Tensor2D;
  /** V at rollout time. */
  oldValues: tf.Tensor2D;
  /** GAE returns A + V. */
  returns: tf.Tensor2D;
  /** 1 on valid tokens and the one after (TRL `~padding_mask_p1`): where the value loss lives. */
  valueMask: tf.Tensor2D;
}

declare module "@prefkit/core" {
  interface LossInputsByKind {
    /** On-policy rollouts (PPO): {@link RolloutInputs}, added by `@prefkit/losses`. */
    rollout: RolloutInputs;
  }
}

/** The clip ranges and value-loss weight the `"ppo"` loss reads from a `PPOConfig`. */
export interface PPOLossConfig {
  /** Clip range of the policy ratio. */
  cliprange: number;
  /** Clip range of the value predictions. */
  cliprangeValue: number;
  /** Weight of the value loss. */
  vfCoef: number;
}

/**
 * The `"ppo"` loss (a `"rollout"` loss): {@link ppoPolicyLoss} + `vfCoef` × {@link ppoValueLoss}, with
 * TRL's per-micro-batch statistics as metrics under the names the update logs their averages by
 * (`val/ratio`, `policy/approxkl_avg`, `policy/clipfrac_avg`, `loss/policy_avg`, `loss/value_avg`,
 * `val/clipfrac_avg`).
 */
export const ppoLoss = defineLoss("ppo", "rollout", (x, config: PPOLossConfig) => {
  const pg = ppoPolicyLoss(x.logprobs, x.oldLogprobs, x.advantages, x.mask, config.cliprange);
  const vf = ppoValueLoss(x.values, x.oldValues, x.returns, x.valueMask, config.cliprangeValue);
  tf.dispose([pg.ratioMin, pg.ratioMax]);
  return {
    loss: tf.add(pg.loss, tf.mul(vf.loss, config.vfCoef)) as tf.Scalar,
    metrics: {
      "val/ratio": pg.ratioMean,
      "policy/approxkl_avg": pg.approxkl,
      "policy/clipfrac_avg": pg.clipfrac,
      "loss/policy_avg": pg.loss,
      "loss/value_avg": vf.loss,
      "val/clipfrac_avg": vf.clipfrac,
    },
  };
});
