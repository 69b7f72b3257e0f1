import { type LossFactory, type PreferenceInputs, tf } from "@prefkit/core";
import type { CPOConfig } from "./config.js";
import { type CPOLossType, cpoObjective } from "./loss.js";

/**
 * The `"cpo"` loss (reference-free), configured from a {@link CPOConfig}: {@link cpoObjective} on summed
 * log-probs (`sigmoid`, `hinge`) or per-token means (`ipo`, `simpo`), mean(losses) + `cpoAlpha`·NLL of the chosen
 * completion, with TRL's `nll_loss` metric and rewards β·p (β·r(p) with AlphaPO).
 */
export const cpoLossPlugin: LossFactory<CPOConfig, PreferenceInputs> = (config) => ({
  name: "cpo",
  batchKind: "preference",
  needsReference: false,
  compute(x: PreferenceInputs) {
    const lossType = config.lossType as CPOLossType;
    const means = lossType === "ipo" || lossType === "simpo";
    const chosen = means ? tf.div(x.chosenLogps, tf.maximum(x.chosenLengths, 1)) : x.chosenLogps;
    const rejected = means ? tf.div(x.rejectedLogps, tf.maximum(x.rejectedLengths, 1)) : x.rejectedLogps;
    const out = cpoObjective(chosen, rejected, x.chosenNll, { ...config, lossType });
    return {
      loss: out.loss,
      rewards: { chosen: out.chosenRewards, rejected: out.rejectedRewards },
      metrics: { nll_loss: out.nllLoss },
    };
  },
});
