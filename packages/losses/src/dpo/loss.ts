import { ConfigError, tf } from "@prefkit/core";
import {
  assertWeightable,
  type DPOLossType,
  type FDivergenceType,
  lossTypeList,
  type DPOLossOptions,
  validateDPOLossFields,
} from "./config.js";
import { asFloatTensor, logSigmoid, smoothedLogistic, sortAscending, type TensorInput } from "./tensor-input.js";

/** Extra per-batch inputs that only some loss types need. */
export interface DPOLossExtras {
  /**
   * Completion lengths in tokens, shape [B]. Required by `sigmoid_norm`. When given, `ipo` divides the
   * scores by them too (TRL's current behaviour), so the log-probs must then be SUMS.
   */
  chosenLengths?: TensorInput;
  /** Rejected completion lengths in tokens, shape [B]; see `chosenLengths`. */
  rejectedLengths?: TensorInput;
  /**
   * Token-mean negative log-likelihood of the chosen completions, required by `sft` (RPO). A scalar
   * (TRL: cross-entropy averaged over all chosen completion tokens of the batch) or a [B] vector.
   */
  chosenNll?: TensorInput;
  /**
   * WPO's per-pair weights `w_c·w_r`, shape [B], without gradient (TRL's `use_weighting`; the preference task
   * computes them with `wpoPairWeights`): every loss type's per-pair loss is multiplied by them. Not
   * defined for `aot`/`aot_unpaired`, which sort the pairs.
   */
  policyWeights?: TensorInput;
}

/** What {@link dpoLoss} returns: new tensors, owned by the caller (dispose them or run inside `tf.tidy`). */
export interface DPOLossResult {
  /**
   * Per-pair loss, shape [B]: the weighted sum over the loss types (times the WPO weights when given). Its
   * mean is the training loss.
   */
  losses: tf.Tensor1D;
  /** β·(log πθ(y_c) − log πref(y_c)), shape [B]; always computed with the reference. */
  chosenRewards: tf.Tensor1D;
  /** β·(log πθ(y_r) − log πref(y_r)), shape [B]; always computed with the reference. */
  rejectedRewards: tf.Tensor1D;
}

/** The f-DPO score of a log-ratio u (TRL's mapping; `reverse_kl` is the identity). */
function fDivergenceScore(u: tf.Tensor, type: FDivergenceType, alpha: number): tf.Tensor {
  switch (type) {
    case "reverse_kl":
      return u;
    case "forward_kl":
      return tf.neg(tf.exp(tf.neg(u)));
    case "js_divergence":
      return logSigmoid(u);
    case "alpha_divergence": {
      if (Math.abs(alpha - 1) < 1e-6) return u; // the limit α → 1 is reverse KL
      // TRL clamps the exponent at 80 so exp stays finite in float32.
      return tf.mul(tf.exp(tf.minimum(tf.mul(u, alpha - 1), 80)), 1 / (alpha - 1));
    }
  }
}

function requireExtra(value: TensorInput | undefined, field: string, lossType: DPOLossType): tf.Tensor {
  if (value === undefined) {
    throw new ConfigError(`loss type "${lossType}" needs the "${field}" input`, { field });
  }
  return asFloatTensor(value);
}

/**
 * The DPO loss family, mirroring TRL's `dpo_loss`: per-pair losses and implicit rewards from the
 * summed completion log-probs of the policy and the reference.
 *
 * Scores: u = log πθ − log πref (with `referenceFree`, log πref is taken as 0), mapped through the
 * f-divergence to s; Δ = s_c − s_r. Each loss type follows TRL's formula (see trl-parity.md); with
 * several types the per-pair losses are summed with `lossWeights`. As in TRL, `aot`, `aot_unpaired`,
 * `apo_zero` and `apo_down` use the raw log-ratios u where TRL does, not the f-divergence scores.
 *
 * Log-probs are token SUMS, except for `ipo` called without lengths: then pass per-token MEANS
 * (TRL feeds IPO length-normalised log-probs). {@link dpoInputsFor} prepares both forms.
 *
 * Differentiable with respect to every input; safe inside `tf.variableGrads` (no `logSigmoid`,
 * no data-dependent `where`, no reads back to JS).
 *
 * @param chosenLogps log πθ(y_c|x), shape [B]
 * @param rejectedLogps log πθ(y_r|x), shape [B]
 * @param refChosenLogps log πref(y_c|x), shape [B]
 * @param refRejectedLogps log πref(y_r|x), shape [B]
 * @param options loss type(s) and hyper-parameters, TRL names and defaults
 * @param extras lengths (`sigmoid_norm`, length-normalised `ipo`), the chosen NLL (`sft`) and WPO's weights
 * @returns new tensors owned by the caller; the inputs are not disposed
 * @throws ConfigError for an unknown loss type, invalid hyper-parameters or a missing extra input
 */
export function dpoLoss(
  chosenLogps: TensorInput,
  rejectedLogps: TensorInput,
  refChosenLogps: TensorInput,
  refRejectedLogps: TensorInput,
  options: DPOLossOptions = {},
  extras: DPOLossExtras = {},
): DPOLossResult {
  validateDPOLossFields(options);
  const beta = options.beta ?? 0.1;
  const types = lossTypeList(options.lossType);
  const weights = options.lossWeights ?? types.map(() => 1);
  const eps = options.labelSmoothing ?? 0;
  const fType = options.fDivergenceType ?? "reverse_kl";
  const alpha = options.fAlphaDivergenceCoef ?? 0.5;
  const tau = options.discopopTau ?? 0.05;
  const referenceFree = options.referenceFree ?? false;
  if (extras.policyWeights !== undefined) assertWeightable(types);

  return tf.tidy(() => {
    const pc = asFloatTensor(chosenLogps);
    const pr = asFloatTensor(rejectedLogps);
    const rc = asFloatTensor(refChosenLogps);
    const rr = asFloatTensor(refRejectedLogps);

    const chosenRewards = tf.mul(tf.sub(pc, rc), beta) as tf.Tensor1D;
    const rejectedRewards = tf.mul(tf.sub(pr, rr), beta) as tf.Tensor1D;

    // Inside the loss the reference may be dropped (reference-free DPO); the rewards above keep it.
    const refC = referenceFree ? tf.zerosLike(rc) : rc;
    const refR = referenceFree ? tf.zerosLike(rr) : rr;
    const uc = tf.sub(pc, refC);
    const ur = tf.sub(pr, refR);
    const sc = fDivergenceScore(uc, fType, alpha);
    const sr = fDivergenceScore(ur, fType, alpha);
    const delta = tf.sub(sc, sr);
    const betaDelta = tf.mul(delta, beta);

    const lengthNormalisedDelta = (lossType: DPOLossType): tf.Tensor => {
      const lc = tf.maximum(requireExtra(extras.chosenLengths, "chosenLengths", lossType), 1);
      const lr = tf.maximum(requireExtra(extras.rejectedLengths, "rejectedLengths", lossType), 1);
      return tf.sub(tf.div(sc, lc), tf.div(sr, lr));
    };

    const perType = (lossType: DPOLossType): tf.Tensor => {
      switch (lossType) {
        case "sigmoid":
          return smoothedLogistic(betaDelta, eps);
        case "hinge":
          return tf.relu(tf.sub(1, betaDelta));
        case "ipo": {
          const d =
            extras.chosenLengths !== undefined || extras.rejectedLengths !== undefined
              ? lengthNormalisedDelta(lossType)
              : delta;
          return tf.square(tf.sub(d, 1 / (2 * beta)));
        }
        case "robust": {
          const clean = tf.mul(logSigmoid(betaDelta), -(1 - eps));
          const flipped = tf.mul(logSigmoid(tf.neg(betaDelta)), -eps);
          return tf.div(tf.sub(clean, flipped), 1 - 2 * eps);
        }
        case "exo_pair": {
          const qw = tf.sigmoid(betaDelta);
          const ql = tf.sigmoid(tf.neg(betaDelta));
          const win = tf.mul(qw, tf.sub(logSigmoid(betaDelta), Math.log1p(-eps)));
          const lose = tf.mul(ql, tf.sub(logSigmoid(tf.neg(betaDelta)), Math.log(eps)));
          return tf.add(win, lose);
        }
        case "nca_pair": {
          const c = tf.mul(sc, beta);
          const r = tf.mul(sr, beta);
          const half = tf.mul(tf.add(logSigmoid(tf.neg(c)), logSigmoid(tf.neg(r))), 0.5);
          return tf.neg(tf.add(logSigmoid(c), half));
        }
        case "bco_pair":
          return tf.neg(tf.add(logSigmoid(tf.mul(sc, beta)), logSigmoid(tf.mul(sr, -beta))));
        case "sppo_hard":
          return tf.add(tf.square(tf.sub(sc, 0.5 / beta)), tf.square(tf.add(sr, 0.5 / beta)));
        case "aot": {
          const policyMargins = sortAscending(tf.sub(pc, pr));
          const refMargins = sortAscending(tf.sub(refC, refR));
          return smoothedLogistic(tf.mul(tf.sub(policyMargins, refMargins), beta), eps);
        }
        case "aot_unpaired": {
          const d = tf.sub(sortAscending(uc), sortAscending(ur));
          return smoothedLogistic(tf.mul(d, beta), eps);
        }
        case "apo_zero":
          return tf.add(tf.sub(1, tf.sigmoid(tf.mul(uc, beta))), tf.sigmoid(tf.mul(ur, beta)));
        case "apo_down":
          return tf.add(tf.sigmoid(tf.mul(uc, beta)), tf.sub(1, tf.sigmoid(betaDelta)));
        case "discopop": {
          const modulation = tf.sigmoid(tf.div(betaDelta, tau));
          const logistic = tf.neg(logSigmoid(betaDelta));
          const exponential = tf.exp(tf.neg(betaDelta));
          return tf.add(tf.mul(logistic, tf.sub(1, modulation)), tf.mul(exponential, modulation));
        }
        case "sigmoid_norm":
          return tf.neg(logSigmoid(tf.mul(lengthNormalisedDelta(lossType), beta)));
        case "sft":
          return tf.mul(requireExtra(extras.chosenNll, "chosenNll", lossType), tf.onesLike(pc));
      }
    };

    let losses = tf.mul(perType(types[0]!), weights[0]!);
    for (let i = 1; i < types.length; i++) losses = tf.add(losses, tf.mul(perType(types[i]!), weights[i]!));
    // WPO: TRL multiplies each type's per-pair loss by w_c·w_r before its mean; the weighted sum is linear.
    if (extras.policyWeights !== undefined) losses = tf.mul(losses, asFloatTensor(extras.policyWeights));
    return { losses: losses as tf.Tensor1D, chosenRewards, rejectedRewards };
  });
}
