import { ConfigError, tf } from "@prefkit/core";
import { checkNumber, checkOneOf } from "../common/checks.js";
import { asFloatTensor, selectRows, stopGradient, type TensorInput } from "../dpo/tensor-input.js";

/** KTO's loss types (`KTOConfig.loss_type`). */
export const KTO_LOSS_TYPES = ["kto", "apo_zero_unpaired"] as const;

/** `"kto"` (the KTO paper, with the batch KL reference point) or `"apo_zero_unpaired"` (APO-zero, no KL). */
export type KTOLossType = (typeof KTO_LOSS_TYPES)[number];

/** Log-probs of the mismatched (prompt, other row's completion) pairs from which KTO estimates the batch KL. */
export interface KTOKLLogps {
  /** Σ log πθ over each mismatched completion, shape [B_KL]. */
  policyKlLogps: TensorInput;
  /** Σ log πref over each mismatched completion, shape [B_KL]. */
  refKlLogps: TensorInput;
}

/** The loss-shaping fields of `KTOConfig`, all optional, with TRL's defaults. */
export interface KTOLossOptions {
  /** β (default 0.1). */
  beta?: number;
  /** Loss type (default `"kto"`). */
  lossType?: KTOLossType;
  /** Weight of each desirable row's loss (default 1). */
  desirableWeight?: number;
  /** Weight of each undesirable row's loss (default 1). */
  undesirableWeight?: number;
  /**
   * The KL reference point z of `"kto"`: the estimate itself (a scalar, used as given), or the log-probs
   * of the mismatched pairs, from which z = max(mean(log πθ_KL − log πref_KL), 0). Required by `"kto"`;
   * ignored by `"apo_zero_unpaired"` (TRL skips the KL pass and logs 0).
   */
  kl?: TensorInput | KTOKLLogps;
}

/** What {@link ktoLoss} returns: new tensors, owned by the caller. */
export interface KTOLossResult {
  /**
   * Weighted per-row losses, shape [B], DESIRABLE ROWS FIRST (in input order), then the undesirable ones,
   * as TRL concatenates them. Their mean is the training loss.
   */
  losses: tf.Tensor1D;
  /** β·(log πθ − log πref) of the desirable rows, shape [n_desirable], without gradient. */
  chosenRewards: tf.Tensor1D;
  /** β·(log πθ − log πref) of the undesirable rows, shape [n_undesirable], without gradient. */
  rejectedRewards: tf.Tensor1D;
  /** The KL estimate z used (0 for `"apo_zero_unpaired"`), a scalar without gradient. */
  kl: tf.Scalar;
}

function isKLLogps(kl: TensorInput | KTOKLLogps): kl is KTOKLLogps {
  return typeof kl === "object" && !Array.isArray(kl) && !(kl instanceof tf.Tensor);
}

/** Checks the KTO loss options; throws a {@link ConfigError} naming the field. */
export function validateKTOLossOptions(options: KTOLossOptions): void {
  if (options.beta !== undefined) checkNumber("beta", options.beta, (v) => v > 0, "a number > 0");
  if (options.lossType !== undefined) checkOneOf("lossType", options.lossType, KTO_LOSS_TYPES);
  for (const field of ["desirableWeight", "undesirableWeight"] as const) {
    const w = options[field];
    if (w !== undefined) checkNumber(field, w, (v) => v >= 0, "a number >= 0");
  }
}

/**
 * The batch KL estimate of KTO: z = max(mean(log πθ_KL − log πref_KL), 0), without gradient. As TRL's
 * `kto_loss`, the mean is detached and then clamped at 0 (a negative sample estimate means "no drift").
 * Returns a new scalar.
 */
export function ktoKLEstimate(policyKlLogps: TensorInput, refKlLogps: TensorInput): tf.Scalar {
  return tf.tidy(() => {
    const diff = tf.sub(asFloatTensor(policyKlLogps), asFloatTensor(refKlLogps));
    return tf.maximum(stopGradient(tf.mean(diff)), 0) as tf.Scalar;
  });
}

/**
 * The KTO loss family, mirroring TRL's `KTOTrainer.kto_loss` on unpaired rows: each row is a completion
 * labelled desirable (`true`) or undesirable (`false`), with its summed log-probs under policy and reference.
 *
 * With u = log πθ − log πref and z the batch KL estimate:
 * - `"kto"`: desirable 1 − σ(β(u − z)), undesirable 1 − σ(β(z − u));
 * - `"apo_zero_unpaired"`: desirable 1 − σ(βu), undesirable σ(βu) (no KL term).
 *
 * Desirable losses are multiplied by `desirableWeight`, undesirable ones by `undesirableWeight`, and, as
 * in TRL, the result lists the desirable rows first; a batch of only one kind is fine (the other part is
 * empty). z and the rewards carry no gradient (TRL computes the KL log-probs under `no_grad` and detaches
 * both); the gradient reaches only `policyLogps` through the losses.
 *
 * @param policyLogps Σ log πθ(y|x) over each completion, shape [B]
 * @param refLogps Σ log πref(y|x), shape [B]
 * @param labels per row: `true` for desirable, `false` for undesirable; length B
 * @param options β, loss type, class weights and the KL estimate
 * @returns new tensors owned by the caller; the inputs are not disposed
 * @throws ConfigError for invalid options, a missing `kl` with `"kto"`, or labels of the wrong length
 */
export function ktoLoss(
  policyLogps: TensorInput,
  refLogps: TensorInput,
  labels: readonly boolean[],
  options: KTOLossOptions = {},
): KTOLossResult {
  validateKTOLossOptions(options);
  const beta = options.beta ?? 0.1;
  const lossType = options.lossType ?? "kto";
  const desirableWeight = options.desirableWeight ?? 1;
  const undesirableWeight = options.undesirableWeight ?? 1;
  if (lossType === "kto" && options.kl === undefined) {
    throw new ConfigError(
      'loss type "kto" needs the batch KL estimate: a scalar, or { policyKlLogps, refKlLogps } of mismatched pairs',
      { field: "kl" },
    );
  }
  const desirable = labels.flatMap((l, i) => (l ? [i] : []));
  const undesirable = labels.flatMap((l, i) => (l ? [] : [i]));

  return tf.tidy(() => {
    const policy = asFloatTensor(policyLogps);
    if (policy.shape[0] !== labels.length) {
      throw new ConfigError(`must hold one label per row: ${policy.shape[0]} rows, ${labels.length} labels`, {
        field: "labels",
      });
    }
    const logratios = tf.sub(policy, asFloatTensor(refLogps));
    let kl: tf.Tensor = tf.scalar(0);
    if (lossType === "kto") {
      const given = options.kl!;
      kl = isKLLogps(given)
        ? ktoKLEstimate(given.policyKlLogps, given.refKlLogps)
        : stopGradient(tf.reshape(asFloatTensor(given), []));
    }
    const chosen = selectRows(logratios, desirable);
    const rejected = selectRows(logratios, undesirable);
    const chosenLosses =
      lossType === "kto"
        ? tf.sub(1, tf.sigmoid(tf.mul(tf.sub(chosen, kl), beta)))
        : tf.sub(1, tf.sigmoid(tf.mul(chosen, beta)));
    const rejectedLosses =
      lossType === "kto"
        ? tf.sub(1, tf.sigmoid(tf.mul(tf.sub(kl, rejected), beta)))
        : tf.sigmoid(tf.mul(rejected, beta));
    const losses = tf.concat([tf.mul(chosenLosses, desirableWeight), tf.mul(rejectedLosses, undesirableWeight)]);
    return {
      losses: losses as tf.Tensor1D,
      chosenRewards: tf.mul(stopGradient(chosen), beta) as tf.Tensor1D,
      rejectedRewards: tf.mul(stopGradient(rejected), beta) as tf.Tensor1D,
      kl: kl as tf.Scalar,
    };
  });
}
