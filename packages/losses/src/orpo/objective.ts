import { defineLoss, type PreferenceInputs, tf } from "@prefkit/core";
import { orpoObjective } from "./loss.js";

/**
 * The `"orpo"` loss (reference-free): NLL of the chosen prompt + completion − β·mean(log σ(log_odds)) on
 * per-token mean log-probs (TRL's `ORPOTrainer`), with TRL's `nll_loss`, `log_odds_ratio`, `log_odds_chosen`
 * metrics, rewards β·p, and `logps/*` as the per-token means TRL logs.
 */
export const orpoLoss = defineLoss(
  "orpo",
  "preference",
  (x: PreferenceInputs, config: { beta: number }) => {
    const chosen = tf.div(x.chosenLogps, tf.maximum(x.chosenLengths, 1)) as tf.Tensor1D;
    const rejected = tf.div(x.rejectedLogps, tf.maximum(x.rejectedLengths, 1)) as tf.Tensor1D;
    const out = orpoObjective(chosen, rejected, x.chosenSequenceNll, { beta: config.beta });
    return {
      loss: out.loss,
      rewards: { chosen: out.chosenRewards, rejected: out.rejectedRewards },
      metrics: {
        nll_loss: out.nllLoss,
        log_odds_ratio: out.logOddsRatio,
        log_odds_chosen: out.logOddsChosen,
        "logps/chosen": tf.mean(chosen) as tf.Scalar,
        "logps/rejected": tf.mean(rejected) as tf.Scalar,
      },
    };
  },
  { needsReference: false },
);
