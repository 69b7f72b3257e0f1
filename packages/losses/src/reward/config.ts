import { ConfigError, DEFAULT_TRAINING_ARGS, resolveConfig, type TrainingArgs } from "@prefkit/core";
import { checkNumber, checkOptionalInt } from "../common/checks.js";

/**
 * Configuration of reward-model training: TRL's `RewardConfig` with camelCase names and TRL's defaults, on
 * top of the loop settings of transformers' `TrainingArguments` (`TrainingArgs`). The model is a causal LM
 * body plus a bias-free `score` head read at the last real token. Defaults come from one table,
 * {@link REWARD_DEFAULTS}; build a config with {@link resolveRewardConfig}.
 */
export interface RewardConfig extends TrainingArgs {
  /**
   * Peak learning rate of AdamW.
   * @defaultValue 1e-4
   */
  learningRate: number;
  /**
   * Log metrics every this many optimizer steps.
   * @defaultValue 10
   */
  loggingSteps: number;
  /**
   * Maximum tokens per sequence; longer rows are DROPPED, not truncated. `null`: no limit.
   * @defaultValue 1024
   */
  maxLength: number | null;
  /**
   * Switch dropout off, so rewards are deterministic.
   * @defaultValue true
   */
  disableDropout: boolean;
  /**
   * Coefficient of the auxiliary loss mean((r_c + r_r)²) that centres rewards around 0
   * (Eisenstein et al. 2023); `null` disables it (0.01 is typical).
   * @defaultValue null
   */
  centerRewardsCoefficient: number | null;
  /**
   * Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos,
   * else the model config's, else 0.
   * @defaultValue null
   */
  padTokenId: number | null;
}

/** TRL's `RewardConfig` defaults: the reward fields and the loop fields whose default differs from `TrainingArgs`'. */
export const REWARD_DEFAULTS = Object.freeze({
  learningRate: 1e-4,
  loggingSteps: 10,
  maxLength: 1024,
  disableDropout: true,
  centerRewardsCoefficient: null,
  padTokenId: null,
} satisfies Omit<RewardConfig, keyof TrainingArgs> & Pick<RewardConfig, "learningRate" | "loggingSteps">);

/** A fresh {@link RewardConfig} with TRL's defaults. */
export function defaultRewardConfig(): RewardConfig {
  return { ...DEFAULT_TRAINING_ARGS, ...REWARD_DEFAULTS };
}

/** Checks the reward fields of a {@link RewardConfig}; throws a {@link ConfigError} naming the field and the allowed values. */
export function validateRewardConfig(config: RewardConfig): void {
  checkOptionalInt("maxLength", config.maxLength, 1);
  if (typeof config.disableDropout !== "boolean") {
    throw new ConfigError("must be true or false", { field: "disableDropout" });
  }
  if (config.padTokenId !== null && config.padTokenId !== undefined) {
    checkNumber("padTokenId", config.padTokenId, (v) => Number.isInteger(v) && v >= 0, "null or an integer >= 0");
  }
  if (config.centerRewardsCoefficient !== null) {
    checkNumber("centerRewardsCoefficient", config.centerRewardsCoefficient, (v) => v >= 0, "null or a number >= 0");
  }
}

/** A full {@link RewardConfig}: defaults, then `input`; loop fields checked by core, reward fields by {@link validateRewardConfig}. */
export function resolveRewardConfig(input: Partial<RewardConfig> = {}): RewardConfig {
  return resolveConfig<RewardConfig>(REWARD_DEFAULTS, input, validateRewardConfig);
}
