/**
 * `ORPOTrainer`: TRL's ORPO trainer as a façade over core's generic `Trainer`: the `"orpo"` loss plugin on the
 * preference task without a reference model.
 * @module
 */
import { composedParts, Trainer } from "@prefkit/core";
import type { PreferenceBatch } from "../preference/task.js";
import {
  type ReferenceFreeRun,
  type ReferenceFreeTrainerOptions,
  referenceFreeRun,
} from "../preference/reference-free-run.js";
import { type ORPOConfig, resolveORPOConfig } from "./config.js";

/** What the `ORPOTrainer` (and `createTrainer("orpo", …)`) takes. */
export type ORPOTrainerOptions = ReferenceFreeTrainerOptions<ORPOConfig>;

/** Compose-ready description of an ORPO run: the `lossType` loss (`"orpo"`) on the reference-free preference task. */
export function orpoRun(options: ORPOTrainerOptions): ReferenceFreeRun<ORPOConfig> {
  const args = resolveORPOConfig(options.args);
  return referenceFreeRun("orpo", args, options, (r) => r.registry.create(args.lossType, args));
}

/**
 * ORPO training (TRL's `ORPOTrainer`): SFT on the chosen completions plus an odds-ratio term, in one forward
 * per step and with no reference model (half DPO's weights in memory, one forward pass less per step).
 *
 * Logged metrics (TRL names): `loss`, `grad_norm`, `learning_rate`, `epoch`, `num_tokens`, `nll_loss`,
 * `log_odds_ratio`, `log_odds_chosen`, `rewards/*`, `logps/*`, `logits/*`, `mean_token_accuracy`, `entropy`.
 */
export class ORPOTrainer extends Trainer<PreferenceBatch, ORPOConfig> {
  /** Compose the run; data is tokenised when training or evaluation starts. */
  constructor(options: ORPOTrainerOptions) {
    super(composedParts(orpoRun(options).definition, options));
  }

  /** Free the optimizer state (the model stays the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
