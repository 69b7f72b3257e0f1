import { type Loss, type LossFactory, type LossOutput, tf } from "@prefkit/core";
import { DPO_LOSS_TYPES, type DPOLossType, lossTypeList } from "./config.js";
import { type DPOLossExtras, type DPOLossOptions, dpoLoss } from "./loss.js";
import { asFloatTensor, type TensorInput } from "./tensor-input.js";

/** Inputs of a DPO {@link Loss}: one batch of pairs (log-probs as in `dpoLoss`) plus optional extras. */
export interface DPOLossInputs extends DPOLossExtras {
  /** log πθ(y_c|x), shape [B]. */
  chosenLogps: TensorInput;
  /** log πθ(y_r|x), shape [B]. */
  rejectedLogps: TensorInput;
  /** log πref(y_c|x), shape [B]. */
  refChosenLogps: TensorInput;
  /** log πref(y_r|x), shape [B]. */
  refRejectedLogps: TensorInput;
}

/** TRL's DPO metric names, as produced by a DPO {@link Loss}. */
export const DPO_METRIC_NAMES = [
  "rewards/chosen",
  "rewards/rejected",
  "rewards/margins",
  "rewards/accuracies",
  "logps/chosen",
  "logps/rejected",
] as const;

/** Output of a DPO {@link Loss}: the mean loss and TRL's batch metrics as scalars. */
export interface DPOLossOutput extends LossOutput {
  /** Batch metrics keyed by TRL's names ({@link DPO_METRIC_NAMES}). */
  metrics: Record<(typeof DPO_METRIC_NAMES)[number], tf.Scalar>;
}

/**
 * A DPO {@link Loss} for the given options: `compute` returns the batch-mean loss (the weighted sum of
 * the per-type means, as TRL) and the metrics `rewards/chosen`, `rewards/rejected`, `rewards/margins`,
 * `rewards/accuracies` (mean of r_c > r_r), `logps/chosen` and `logps/rejected` (batch means).
 * All returned tensors are new and owned by the caller.
 *
 * Inside `tf.variableGrads(f)` only the returned loss survives `f` (the forward pass is tidied), so a
 * trainer that wants the metrics from the same call must `tf.keep` them inside `f` and dispose them later.
 */
export function createDPOLoss(options: DPOLossOptions = {}): Loss<DPOLossInputs, DPOLossOutput> {
  const name = lossTypeList(options.lossType).join("+");
  return {
    name,
    compute(inputs: DPOLossInputs): DPOLossOutput {
      return tf.tidy(() => {
        const { losses, chosenRewards, rejectedRewards } = dpoLoss(
          inputs.chosenLogps,
          inputs.rejectedLogps,
          inputs.refChosenLogps,
          inputs.refRejectedLogps,
          options,
          inputs,
        );
        const margins = tf.sub(chosenRewards, rejectedRewards);
        return {
          loss: tf.mean(losses) as tf.Scalar,
          metrics: {
            "rewards/chosen": tf.mean(chosenRewards) as tf.Scalar,
            "rewards/rejected": tf.mean(rejectedRewards) as tf.Scalar,
            "rewards/margins": tf.mean(margins) as tf.Scalar,
            "rewards/accuracies": tf.mean(tf.step(margins)) as tf.Scalar,
            "logps/chosen": tf.mean(asFloatTensor(inputs.chosenLogps)) as tf.Scalar,
            "logps/rejected": tf.mean(asFloatTensor(inputs.rejectedLogps)) as tf.Scalar,
          },
        };
      });
    },
  };
}

/** A factory for each DPO loss type: it builds the loss from a DPO config, forcing that one type. */
export const DPO_LOSSES: Record<
  DPOLossType,
  LossFactory<DPOLossOptions, DPOLossInputs, DPOLossOutput>
> = Object.fromEntries(
  DPO_LOSS_TYPES.map((lossType) => [
    lossType,
    (config: DPOLossOptions = {}) => createDPOLoss({ ...config, lossType, lossWeights: null }),
  ]),
) as Record<DPOLossType, LossFactory<DPOLossOptions, DPOLossInputs, DPOLossOutput>>;

/**
 * The part of a loss registry that registration needs, so any registry (core's `LossRegistry`, a
 * `Map` wrapper in a test) can receive the built-in losses.
 */
export interface LossRegistryLike {
  /** Registers `factory` under `name`. */
  register(name: string, factory: LossFactory<any, any, any>): void;
}

/** Registers every DPO loss type under its TRL name (`"sigmoid"`, `"ipo"`, …) plus `"dpo"` (any mix). */
export function registerDPOLosses(registry: LossRegistryLike): void {
  for (const [name, factory] of Object.entries(DPO_LOSSES)) registry.register(name, factory);
  registry.register("dpo", (config: DPOLossOptions = {}) => createDPOLoss(config));
}
