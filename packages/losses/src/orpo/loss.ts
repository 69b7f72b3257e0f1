import { tf } from "@prefkit/core";
import { checkNumber } from "../common/checks.js";
import { asFloatTensor, logSigmoid, stopGradient, type TensorInput } from "../dpo/tensor-input.js";

/** The loss-shaping field of `ORPOConfig`. */
export interface ORPOLossOptions {
  /** β, the weight of the odds-ratio term λ in the ORPO paper (default 0.1). */
  beta?: number;
}

/** What {@link oddsRatioLoss} returns: new tensors, owned by the caller. */
export interface OddsRatioLossResult {
  /**
   * β·log σ(log_odds) per pair, shape [B]: the odds-ratio term as TRL returns it, a log-likelihood (≤ 0)
   * that the trainer SUBTRACTS (loss = NLL − mean(losses)), not a loss to minimise directly.
   */
  losses: tf.Tensor1D;
  /** β·log πθ(y_c|x) (per-token mean log-probs), shape [B], without gradient. */
  chosenRewards: tf.Tensor1D;
  /** β·log πθ(y_r|x) (per-token mean log-probs), shape [B], without gradient. */
  rejectedRewards: tf.Tensor1D;
  /** mean(log σ(log_odds)), the `log_odds_ratio` metric. */
  logOddsRatio: tf.Scalar;
  /** mean(log_odds), the `log_odds_chosen` metric. */
  logOddsChosen: tf.Scalar;
}

/** What {@link orpoObjective} returns: new tensors, owned by the caller. */
export interface ORPOObjectiveResult extends OddsRatioLossResult {
  /** NLL − mean(β·log σ(log_odds)), the scalar ORPO minimises. */
  loss: tf.Scalar;
  /** The NLL term as given (the `nll_loss` metric). */
  nllLoss: tf.Scalar;
}

/** The threshold −ln 2 at which {@link log1mexp} switches form (TRL's `log1mexp`). */
const LOG1MEXP_SWITCH = -Math.LN2;

/**
 * log(1 − eˣ) for x < 0, computed stably as TRL's `log1mexp`: log1p(−eˣ) below −ln 2 and log(−expm1(x))
 * above it. Each branch sees its input clamped to its own side, so the branch not taken stays finite
 * and its (masked-out) gradient cannot turn into 0·∞ = NaN. Returns a new tensor.
 */
export function log1mexp(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const low = tf.log1p(tf.neg(tf.exp(tf.minimum(x, LOG1MEXP_SWITCH))));
    const high = tf.log(tf.neg(tf.expm1(tf.maximum(x, LOG1MEXP_SWITCH))));
    const isLow = tf.step(tf.sub(LOG1MEXP_SWITCH, x)); // 1 where x < −ln 2 (step(0) = 0: x = −ln 2 takes "high")
    return tf.add(tf.mul(isLow, low), tf.mul(tf.sub(1, isLow), high));
  });
}

/**
 * ORPO's odds-ratio term, mirroring TRL's `ORPOTrainer.odds_ratio_loss`. With p = per-token MEAN
 * log-probs of the policy (ORPO needs no reference model):
 * log_odds = (p_c − p_r) − (log(1 − e^{p_c}) − log(1 − e^{p_r})), losses = β·log σ(log_odds).
 *
 * As in TRL, the rewards are β·p without gradient and the two metrics are batch means.
 * Differentiable with respect to both inputs; safe inside `tf.variableGrads`.
 *
 * @param chosenLogps per-token mean log πθ(y_c|x), shape [B] (each < 0)
 * @param rejectedLogps per-token mean log πθ(y_r|x), shape [B] (each < 0)
 * @param options β
 * @returns new tensors owned by the caller; the inputs are not disposed
 * @throws ConfigError for β ≤ 0
 */
export function oddsRatioLoss(
  chosenLogps: TensorInput,
  rejectedLogps: TensorInput,
  options: ORPOLossOptions = {},
): OddsRatioLossResult {
  if (options.beta !== undefined) checkNumber("beta", options.beta, (v) => v > 0, "a number > 0");
  const beta = options.beta ?? 0.1;
  return tf.tidy(() => {
    const pc = asFloatTensor(chosenLogps);
    const pr = asFloatTensor(rejectedLogps);
    const logOdds = tf.sub(tf.sub(pc, pr), tf.sub(log1mexp(pc), log1mexp(pr)));
    const ratio = logSigmoid(logOdds);
    return {
      losses: tf.mul(ratio, beta) as tf.Tensor1D,
      chosenRewards: tf.mul(stopGradient(pc), beta) as tf.Tensor1D,
      rejectedRewards: tf.mul(stopGradient(pr), beta) as tf.Tensor1D,
      logOddsRatio: tf.mean(ratio) as tf.Scalar,
      logOddsChosen: tf.mean(logOdds) as tf.Scalar,
    };
  });
}

/**
 * The full ORPO objective of TRL's `ORPOTrainer.get_batch_loss_metrics`: loss = NLL − mean(β·log σ(log_odds)).
 *
 * `chosenNll` is TRL's NLL term: the cross-entropy averaged over all tokens of the chosen sequences of the
 * batch. Note TRL's quirk: for decoder-only models that NLL covers the PROMPT AND the completion (its
 * labels are the whole input ids, padding masked), unlike CPO's completion-only NLL.
 *
 * @param chosenLogps per-token mean log πθ(y_c|x), shape [B]
 * @param rejectedLogps per-token mean log πθ(y_r|x), shape [B]
 * @param chosenNll the NLL term, a scalar
 * @param options β
 * @returns new tensors owned by the caller; the inputs are not disposed
 */
export function orpoObjective(
  chosenLogps: TensorInput,
  rejectedLogps: TensorInput,
  chosenNll: TensorInput,
  options: ORPOLossOptions = {},
): ORPOObjectiveResult {
  return tf.tidy(() => {
    const oddsRatio = oddsRatioLoss(chosenLogps, rejectedLogps, options);
    const nllLoss = tf.reshape(asFloatTensor(chosenNll), []) as tf.Scalar;
    return { ...oddsRatio, loss: tf.sub(nllLoss, tf.mean(oddsRatio.losses)) as tf.Scalar, nllLoss };
  });
}
