/**
 * `RLOOTrainer`: TRL's RLOO trainer as a façade over core's generic `Trainer` (see `rlooRun`).
 * @module
 */
import { GroupRolloutTrainer } from "../grpo/trainer.js";
import type { RLOOConfig } from "./config.js";
import { type RLOOTrainerOptions, rlooRun } from "./method.js";

/**
 * RLOO, REINFORCE Leave-One-Out (TRL's `RLOOTrainer`, v0.29.1 semantics). Each trainer step is one update:
 * sample k = `numGenerations` completions per prompt, score them with the reward functions, subtract
 * β · Σ_t (log π_old − log π_ref) from each reward (β = 0 loads no reference model), take A = R − the mean
 * reward of the other k − 1 completions of the prompt (optionally normalised, `normalizeAdvantages`), then
 * `numIterations` optimizer steps through the `"rloo"` loss: the clipped objective on the SEQUENCE ratio
 * exp(Σ_t log πθ − Σ_t log π_old), mean over completions.
 *
 * Logged metrics: GRPO's (`reward`, `reward_std`, `rewards/<name>/*`, `frac_reward_zero_std`, `completions/*`,
 * `entropy`, `clip_ratio/*` as shares of sequences) and `kl`, the token mean of the k1 KL in the rewards.
 */
export class RLOOTrainer extends GroupRolloutTrainer<RLOOConfig> {
  /** @throws ConfigError for a bad config field. */
  constructor(options: RLOOTrainerOptions) {
    super(rlooRun(options), options);
  }
}

export type { RLOOTrainerOptions };
