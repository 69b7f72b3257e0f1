/**
 * `CPOTrainer`: TRL's CPO trainer (CPO, SimPO, AlphaPO) as a façade over core's generic `Trainer`: the `"cpo"`
 * loss plugin on the preference task without a reference model.
 * @module
 */
import {
  composeRun,
  type Loss,
  type LossFactory,
  type PreferenceInputs,
  TRAINER_PARTS,
  Trainer,
  type TrainerParts,
  tf,
} from "@prefkit/core";
import type { PreferenceBatch } from "../preference/task.js";
import {
  type ReferenceFreeRun,
  type ReferenceFreeTrainerOptions,
  referenceFreeRun,
} from "../preference/reference-free-run.js";
import { type CPOConfig, isCPOLossType, resolveCPOConfig } from "./config.js";
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

/** What the `CPOTrainer` (and `createTrainer("cpo", …)`) takes. */
export type CPOTrainerOptions = ReferenceFreeTrainerOptions<CPOConfig>;

/** Compose-ready description of a CPO run: CPO's own loss types through `"cpo"`, other names from the registry. */
export function cpoRun(options: CPOTrainerOptions): ReferenceFreeRun<CPOConfig> {
  const args = resolveCPOConfig(options.args);
  return referenceFreeRun(
    "cpo",
    args,
    options,
    (r): Loss<PreferenceInputs> => r.registry.create(isCPOLossType(args.lossType) ? "cpo" : args.lossType, args),
  );
}

/**
 * CPO training (TRL's `CPOTrainer`; `lossType: "simpo"` is SimPO, `"alphapo"` AlphaPO): a contrastive loss on
 * the policy's own log-probs plus `cpoAlpha`·NLL, with no reference model (half DPO's weights in memory, one
 * forward pass less per step).
 *
 * Logged metrics (TRL names): `loss`, `grad_norm`, `learning_rate`, `epoch`, `num_tokens`, `nll_loss`,
 * `rewards/*`, `logps/*`, `logits/*`, `mean_token_accuracy`, `entropy`.
 */
export class CPOTrainer extends Trainer<PreferenceBatch, CPOConfig> {
  /** Compose the run; data is tokenised when training or evaluation starts. */
  constructor(options: CPOTrainerOptions) {
    super(
      composeRun(cpoRun(options).definition, options).resolve<TrainerParts<PreferenceBatch, CPOConfig>>(TRAINER_PARTS),
    );
  }

  /** Free the optimizer state (the model stays the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
