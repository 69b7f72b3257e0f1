/**
 * `CPOTrainer`: TRL's CPO trainer (CPO, SimPO, AlphaPO) as a façade over core's generic `Trainer`: the `"cpo"`
 * loss plugin on the preference task without a reference model.
 * @module
 */
import { composedParts, type Loss, type PreferenceInputs, Trainer } from "@prefkit/core";
import type { PreferenceBatch } from "../preference/task.js";
import {
  type ReferenceFreeRun,
  type ReferenceFreeTrainerOptions,
  referenceFreeRun,
} from "../preference/reference-free-run.js";
import { type CPOConfig, isCPOLossType, resolveCPOConfig } from "./config.js";

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
    super(composedParts(cpoRun(options).definition, options));
  }

  /** Free the optimizer state (the model stays the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
