import { ConfigError, DEFAULT_TRAINING_ARGS, resolveConfig, type TrainingArgs } from "@prefkit/core";
import { checkNumber } from "../common/checks.js";
import {
  checkLossName,
  GROUP_ROLLOUT_DEFAULTS,
  type GroupRolloutConfig,
  validateGroupRolloutConfig,
} from "../grpo/config.js";

/**
 * Configuration of RLOO training: TRL's `RLOOConfig` (v0.29.1) in camelCase with TRL's defaults, on top of
 * the loop settings of transformers' `TrainingArguments`. Defaults come from one table, {@link RLOO_DEFAULTS};
 * build a config with {@link resolveRLOOConfig}. See `GroupRolloutConfig` for what one update is.
 */
export interface RLOOConfig extends GroupRolloutConfig {
  /**
   * Completions sampled per prompt (k); each one's baseline is the mean reward of the other k − 1. Must
   * divide `perDeviceTrainBatchSize × gradientAccumulationSteps`, ≥ 2.
   * @defaultValue 2
   */
  numGenerations: number;
  /**
   * KL coefficient β: β · Σ_t (log π_old − log π_ref) over each completion is subtracted from its reward
   * (sequence-level k1 KL); 0 loads no reference model at all.
   * @defaultValue 0.05
   */
  beta: number;
  /**
   * Normalise the advantages over the batch: (A − mean) / (std + 1e-4).
   * @defaultValue false
   */
  normalizeAdvantages: boolean;
  /**
   * Clamp the weighted rewards to `[min, max]` before the KL penalty; `null`: no clamp.
   * @defaultValue null
   */
  rewardClipRange: [number, number] | null;
  /**
   * The `"group-rollout"` loss of each micro-batch: `"rloo"` (the clipped sequence-level objective) or the
   * name of a registered user loss (a prefkit field; TRL's RLOO has one loss).
   * @defaultValue "rloo"
   */
  lossType: string;
}

/** TRL's `RLOOConfig` defaults: the RLOO fields and the loop fields whose default differs from `TrainingArgs`'. */
export const RLOO_DEFAULTS = Object.freeze({
  ...GROUP_ROLLOUT_DEFAULTS,
  numGenerations: 2,
  beta: 0.05,
  normalizeAdvantages: false,
  rewardClipRange: null,
  lossType: "rloo",
} satisfies Omit<RLOOConfig, keyof TrainingArgs> & Pick<RLOOConfig, "learningRate" | "loggingSteps">);

/** A fresh {@link RLOOConfig} with TRL's defaults (`TrainingArgs`' then {@link RLOO_DEFAULTS}). */
export function defaultRLOOConfig(): RLOOConfig {
  return { ...DEFAULT_TRAINING_ARGS, ...RLOO_DEFAULTS };
}

/** Checks an {@link RLOOConfig}'s RLOO fields (the loop fields are core's `resolveTrainingArgs`' job). */
export function validateRLOOConfig(config: RLOOConfig): void {
  validateGroupRolloutConfig(config);
  checkLossName(config.lossType);
  if (typeof config.normalizeAdvantages !== "boolean") {
    throw new ConfigError("must be true or false", { field: "normalizeAdvantages" });
  }
  const range = config.rewardClipRange;
  if (range !== null) {
    if (!Array.isArray(range) || range.length !== 2) {
      throw new ConfigError("must be null or [min, max]", { field: "rewardClipRange" });
    }
    checkNumber("rewardClipRange", range[0], () => true, "two finite numbers");
    checkNumber("rewardClipRange", range[1], (v) => v >= range[0], "[min, max] with min <= max");
  }
}

/**
 * A full {@link RLOOConfig} from `input`: `TrainingArgs`' defaults, then {@link RLOO_DEFAULTS}, then the input.
 * @throws ConfigError naming the bad field.
 */
export function resolveRLOOConfig(input: Partial<RLOOConfig> = {}): RLOOConfig {
  return resolveConfig<RLOOConfig>(RLOO_DEFAULTS, input, validateRLOOConfig);
}
