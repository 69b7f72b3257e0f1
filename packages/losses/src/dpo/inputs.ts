import { tf } from "@prefkit/core";
import { type DPOLossType, lossTypeList } from "./config.js";
import type { DPOLossExtras } from "./loss.js";
import { asFloatTensor, type TensorInput } from "./tensor-input.js";

/** Summed completion log-probs of one batch of pairs, plus the completion lengths. */
export interface DPOLogpSums {
  /** Σ log πθ over the chosen completion tokens, shape [B]. */
  chosenLogps: TensorInput;
  /** Σ log πθ over the rejected completion tokens, shape [B]. */
  rejectedLogps: TensorInput;
  /** Σ log πref over the chosen completion tokens, shape [B]. */
  refChosenLogps: TensorInput;
  /** Σ log πref over the rejected completion tokens, shape [B]. */
  refRejectedLogps: TensorInput;
  /** Chosen completion lengths in tokens, shape [B]. */
  chosenLengths: TensorInput;
  /** Rejected completion lengths in tokens, shape [B]. */
  rejectedLengths: TensorInput;
  /** Token-mean NLL of the chosen completions (only needed by `sft`). */
  chosenNll?: TensorInput;
}

/** The positional arguments of `dpoLoss` (log-probs and extras) prepared for a loss configuration. */
export interface DPOLossArguments {
  /** Chosen policy log-probs (sums, or per-token means for lone `ipo`). */
  chosenLogps: tf.Tensor;
  /** Rejected policy log-probs, same form as `chosenLogps`. */
  rejectedLogps: tf.Tensor;
  /** Chosen reference log-probs, same form as `chosenLogps`. */
  refChosenLogps: tf.Tensor;
  /** Rejected reference log-probs, same form as `chosenLogps`. */
  refRejectedLogps: tf.Tensor;
  /** Lengths and NLL to pass as `dpoLoss`'s `extras`. */
  extras: DPOLossExtras;
}

/** Per-token mean log-probs: `sums / max(lengths, 1)` (TRL's `average_log_prob`). Returns a new tensor. */
export function perTokenMeanLogps(sums: TensorInput, lengths: TensorInput): tf.Tensor {
  return tf.tidy(() => tf.div(asFloatTensor(sums), tf.maximum(asFloatTensor(lengths), 1)));
}

/**
 * Turns summed log-probs and lengths into what `dpoLoss` needs for the given loss type(s):
 * - `ipo` alone: per-token MEAN log-probs and no lengths (TRL's IPO is length-normalised), so the
 *   rewards are on means as well;
 * - anything else (including mixes that contain `ipo`): the sums, with the lengths as extras, so
 *   `sigmoid_norm` can normalise and `ipo` divides its scores by the lengths inside `dpoLoss`.
 *
 * Note the rewards follow the inputs: with lone `ipo` they are β·(mean log-ratio), as in older TRL
 * (`average_log_prob`); current TRL logs rewards on sums. Pass sums and lengths straight to `dpoLoss`
 * to get that instead (its `ipo` then normalises the scores itself).
 *
 * The returned tensors are new (owned by the caller) or, for sums passed as tensors, the caller's own.
 */
export function dpoInputsFor(lossType: DPOLossType | readonly DPOLossType[], batch: DPOLogpSums): DPOLossArguments {
  const types = lossTypeList(lossType);
  const nll = batch.chosenNll === undefined ? {} : { chosenNll: batch.chosenNll };
  if (types.length === 1 && types[0] === "ipo") {
    return {
      chosenLogps: perTokenMeanLogps(batch.chosenLogps, batch.chosenLengths),
      rejectedLogps: perTokenMeanLogps(batch.rejectedLogps, batch.rejectedLengths),
      refChosenLogps: perTokenMeanLogps(batch.refChosenLogps, batch.chosenLengths),
      refRejectedLogps: perTokenMeanLogps(batch.refRejectedLogps, batch.rejectedLengths),
      extras: nll,
    };
  }
  return {
    chosenLogps: asFloatTensor(batch.chosenLogps),
    rejectedLogps: asFloatTensor(batch.rejectedLogps),
    refChosenLogps: asFloatTensor(batch.refChosenLogps),
    refRejectedLogps: asFloatTensor(batch.refRejectedLogps),
    extras: { chosenLengths: batch.chosenLengths, rejectedLengths: batch.rejectedLengths, ...nll },
  };
}
