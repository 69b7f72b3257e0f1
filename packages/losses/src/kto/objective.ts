import type { Loss, LossFactory, UnpairedInputs } from "@prefkit/core";
import { tf } from "@prefkit/core";
import { type KTOLossOptions, type KTOLossType, ktoLoss } from "./loss.js";

/** An `"unpaired"` loss; `klPass` says whether it needs the KL pass over mismatched pairs (default true). */
export interface UnpairedLoss extends Loss<UnpairedInputs> {
  /** False when the loss ignores the batch KL estimate (no KL forward passes are run). */
  readonly klPass?: boolean;
}

/**
 * The KTO loss of `lossType` as an `"unpaired"` {@link Loss}: {@link ktoLoss} on the task's inputs, its mean as
 * the loss (TRL's `losses.nanmean()`), the per-row rewards (desirable as `chosen`, undesirable as `rejected`)
 * and TRL's `kl` metric.
 */
export function createKTOLoss(
  lossType: KTOLossType,
): LossFactory<Omit<KTOLossOptions, "lossType" | "kl">, UnpairedInputs> {
  return (config = {}): UnpairedLoss => ({
    name: lossType,
    batchKind: "unpaired",
    klPass: lossType === "kto",
    compute(inputs: UnpairedInputs) {
      return tf.tidy(() => {
        const kl =
          lossType === "kto" && inputs.klLogps !== undefined && inputs.refKlLogps !== undefined
            ? { policyKlLogps: inputs.klLogps, refKlLogps: inputs.refKlLogps }
            : undefined;
        const out = ktoLoss(inputs.logps, inputs.refLogps, inputs.labels, {
          beta: config.beta,
          lossType,
          desirableWeight: config.desirableWeight,
          undesirableWeight: config.undesirableWeight,
          ...(kl !== undefined ? { kl } : {}),
        });
        return {
          loss: tf.mean(out.losses) as tf.Scalar,
          rewards: { chosen: out.chosenRewards, rejected: out.rejectedRewards },
          metrics: { kl: out.kl },
        };
      });
    },
  });
}
