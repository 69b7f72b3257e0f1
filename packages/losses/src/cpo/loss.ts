import { ConfigError, tf } from "@prefkit/core";
import { checkNumber, checkOneOf } from "../common/checks.js";
import { asFloatTensor, smoothedLogistic, stopGradient, type TensorInput } from "../dpo/tensor-input.js";

/** CPO's loss types (`CPOConfig.loss_type`; TRL's `"alphapo"` is config sugar for `"simpo"` with `cpoAlpha` 0). */
export const CPO_LOSS_TYPES = ["sigmoid", "hinge", "ipo", "simpo"] as const;

/** `"sigmoid"` (CPO), `"hinge"`, `"ipo"` or `"simpo"` (SimPO: length-normalised, with the target margin γ). */
export type CPOLossType = (typeof CPO_LOSS_TYPES)[number];

/** The loss-shaping fields of `CPOConfig`, all optional, with TRL's defaults. */
export interface CPOLossOptions {
  /** β (default 0.1); for `ipo` it is the regulariser τ. */
  beta?: number;
  /** Loss type (default `"sigmoid"`). */
  lossType?: CPOLossType;
  /** ε, the label-flip probability of the logistic losses `sigmoid` and `simpo` (default 0; in [0, 0.5)). */
  labelSmoothing?: number;
  /** SimPO's target reward margin γ (default 0.5), used only by `simpo`. */
  simpoGamma?: number;
  /**
   * AlphaPO's α (default 0 = off): each log-prob x becomes the reward (1 − e^{−αx})/α before the
   * difference, for every loss type.
   */
  alpha?: number;
}

/** Options of {@link cpoObjective}: the loss options plus the NLL weight. */
export interface CPOObjectiveOptions extends CPOLossOptions {
  /** Weight of the chosen NLL (TRL `cpo_alpha`, default 1; SimPO and AlphaPO use 0). */
  cpoAlpha?: number;
}

/** What {@link cpoLoss} returns: new tensors, owned by the caller. */
export interface CPOLossResult {
  /** Per-pair loss, shape [B]; its mean is the preference part of the training loss. */
  losses: tf.Tensor1D;
  /** β·log πθ(y_c|x) (β·r(log πθ) with AlphaPO), shape [B], without gradient. */
  chosenRewards: tf.Tensor1D;
  /** β·log πθ(y_r|x) (β·r(log πθ) with AlphaPO), shape [B], without gradient. */
  rejectedRewards: tf.Tensor1D;
}

/** What {@link cpoObjective} returns: new tensors, owned by the caller. */
export interface CPOObjectiveResult extends CPOLossResult {
  /** mean(losses) + cpoAlpha·NLL, the scalar CPO minimises. */
  loss: tf.Scalar;
  /** The NLL term (0 when `cpoAlpha` is 0, as TRL skips it; the `nll_loss` metric). */
  nllLoss: tf.Scalar;
}

/** Checks the CPO loss options; throws a {@link ConfigError} naming the field. */
export function validateCPOLossOptions(options: CPOObjectiveOptions): void {
  if (options.beta !== undefined) checkNumber("beta", options.beta, (v) => v > 0, "a number > 0");
  if (options.lossType !== undefined) checkOneOf("lossType", options.lossType, CPO_LOSS_TYPES);
  if (options.labelSmoothing !== undefined) {
    checkNumber("labelSmoothing", options.labelSmoothing, (v) => v >= 0 && v < 0.5, "a number in [0, 0.5)");
  }
  if (options.simpoGamma !== undefined) checkNumber("simpoGamma", options.simpoGamma, () => true, "a finite number");
  if (options.alpha !== undefined) checkNumber("alpha", options.alpha, () => true, "a finite number");
  if (options.cpoAlpha !== undefined) checkNumber("cpoAlpha", options.cpoAlpha, (v) => v >= 0, "a number >= 0");
}

/**
 * The CPO loss family (CPO, SimPO, AlphaPO), mirroring TRL's `CPOTrainer.cpo_loss`. Reference-free: with
 * p the policy log-probs (SUMS for `sigmoid`/`hinge`, per-token MEANS for `ipo`/`simpo`, as TRL's
 * `average_log_prob=loss_type in ["ipo", "simpo"]`), logits = p_c − p_r, or r(p_c) − r(p_r) with AlphaPO's
 * r(x) = (1 − e^{−αx})/α when α ≠ 0, then:
 * - `sigmoid`: −(1−ε) log σ(β·logits) − ε log σ(−β·logits);
 * - `simpo`: the same on logits − γ/β;
 * - `hinge`: relu(1 − β·logits); `ipo`: (logits − 1/(2β))² (both ignore ε, as TRL).
 *
 * Rewards are β·p (β·r(p) with AlphaPO), without gradient, as TRL logs them.
 *
 * @param chosenLogps log πθ(y_c|x), shape [B]
 * @param rejectedLogps log πθ(y_r|x), shape [B]
 * @param options loss type and hyper-parameters, TRL names and defaults
 * @returns new tensors owned by the caller; the inputs are not disposed
 * @throws ConfigError for an unknown loss type or invalid hyper-parameters
 */
export function cpoLoss(
  chosenLogps: TensorInput,
  rejectedLogps: TensorInput,
  options: CPOLossOptions = {},
): CPOLossResult {
  validateCPOLossOptions(options);
  const beta = options.beta ?? 0.1;
  const lossType = options.lossType ?? "sigmoid";
  const eps = options.labelSmoothing ?? 0;
  const gamma = options.simpoGamma ?? 0.5;
  const alpha = options.alpha ?? 0;
  return tf.tidy(() => {
    // TRL computes (1 − exp(p).pow(−α))/α; −expm1(−α·p)/α is the same value without exp(p) underflowing
    // for long sums or 1 − e^{…} cancelling in float32 for small α·p.
    const reward = (logps: tf.Tensor) => (alpha === 0 ? logps : tf.div(tf.expm1(tf.mul(logps, -alpha)), -alpha));
    const chosen = reward(asFloatTensor(chosenLogps));
    const rejected = reward(asFloatTensor(rejectedLogps));
    const logits = tf.sub(chosen, rejected);
    let losses: tf.Tensor;
    switch (lossType) {
      case "simpo":
        losses = smoothedLogistic(tf.mul(tf.sub(logits, gamma / beta), beta), eps);
        break;
      case "sigmoid":
        losses = smoothedLogistic(tf.mul(logits, beta), eps);
        break;
      case "hinge":
        losses = tf.relu(tf.sub(1, tf.mul(logits, beta)));
        break;
      case "ipo":
        losses = tf.square(tf.sub(logits, 1 / (2 * beta)));
        break;
    }
    return {
      losses: losses as tf.Tensor1D,
      chosenRewards: tf.mul(stopGradient(chosen), beta) as tf.Tensor1D,
      rejectedRewards: tf.mul(stopGradient(rejected), beta) as tf.Tensor1D,
    };
  });
}

/**
 * The full CPO objective of TRL's `CPOTrainer.get_batch_loss_metrics`: loss = mean(losses) + cpoAlpha·NLL.
 * `chosenNll` is the cross-entropy averaged over the chosen COMPLETION tokens of the batch (TRL's CPO
 * masks the prompt, unlike ORPO); with `cpoAlpha` 0 it may be omitted and counts as 0, as TRL skips it.
 *
 * @param chosenLogps log πθ(y_c|x), shape [B] (sums or means, see {@link cpoLoss})
 * @param rejectedLogps log πθ(y_r|x), shape [B]
 * @param chosenNll the NLL term, a scalar; required unless `cpoAlpha` is 0
 * @param options loss options and `cpoAlpha`
 * @returns new tensors owned by the caller; the inputs are not disposed
 * @throws ConfigError for invalid options or a missing NLL with `cpoAlpha` ≠ 0
 */
export function cpoObjective(
  chosenLogps: TensorInput,
  rejectedLogps: TensorInput,
  chosenNll: TensorInput | undefined,
  options: CPOObjectiveOptions = {},
): CPOObjectiveResult {
  validateCPOLossOptions(options);
  const cpoAlpha = options.cpoAlpha ?? 1;
  if (cpoAlpha !== 0 && chosenNll === undefined) {
    throw new ConfigError("cpoAlpha != 0 needs the chosen NLL", { field: "chosenNll" });
  }
  return tf.tidy(() => {
    const result = cpoLoss(chosenLogps, rejectedLogps, options);
    const nllLoss = (cpoAlpha === 0 ? tf.scalar(0) : tf.reshape(asFloatTensor(chosenNll!), [])) as tf.Scalar;
    return { ...result, loss: tf.add(tf.mean(result.losses), tf.mul(nllLoss, cpoAlpha)) as tf.Scalar, nllLoss };
  });
}
