import { ConfigError, DEFAULT_TRAINING_ARGS, type TrainingArgs } from "@prefkit/core";
import { checkNumber, checkOptionalInt } from "../dpo/config.js";

/**
 * Configuration of reward-model training: TRL's `RewardConfig` with camelCase names and TRL's defaults,
 * including the loop settings of transformers' `TrainingArguments` it extends (`outputDir`, `saveSteps`, ...).
 * The model is a causal LM body plus a bias-free `score` head read at the last real token.
 */
export interface RewardConfig extends TrainingArgs {
  /** Peak learning rate (TRL default 1e-4). */
  learningRate: number;
  /** Log metrics every this many optimizer steps. */
  loggingSteps: number;
  /** Seed, set before the score head is initialised so runs reproduce. */
  seed: number;
  /** Pairs per device per micro-batch. */
  perDeviceTrainBatchSize: number;
  /** Micro-batches accumulated per optimizer step. */
  gradientAccumulationSteps: number;
  /** Passes over the training set (ignored when `maxSteps` > 0). */
  numTrainEpochs: number;
  /** Total optimizer steps; -1 means "derive from `numTrainEpochs`". */
  maxSteps: number;
  /** Gradient clipping by global norm; 0 disables it. */
  maxGradNorm: number;
  /** Maximum tokens per sequence; longer rows are DROPPED, not truncated. `null`: no limit. */
  maxLength: number | null;
  /** Switch dropout off, so rewards are deterministic. */
  disableDropout: boolean;
  /**
   * Coefficient of the auxiliary loss mean((r_c + r_r)²) that centres rewards around 0
   * (Eisenstein et al. 2023); `null` disables it (0.01 is typical).
   */
  centerRewardsCoefficient: number | null;
  /** Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos, else 0. */
  padTokenId: number | null;
}

/** A fresh {@link RewardConfig} with TRL's defaults. */
export function defaultRewardConfig(): RewardConfig {
  return {
    ...DEFAULT_TRAINING_ARGS,
    learningRate: 1e-4,
    loggingSteps: 10,
    seed: 42,
    perDeviceTrainBatchSize: 8,
    gradientAccumulationSteps: 1,
    numTrainEpochs: 3,
    maxSteps: -1,
    maxGradNorm: 1,
    maxLength: 1024,
    disableDropout: true,
    centerRewardsCoefficient: null,
    padTokenId: null,
  };
}

/** Checks a {@link RewardConfig}; throws a {@link ConfigError} naming the field and the allowed values. */
export function validateRewardConfig(config: RewardConfig): void {
  checkNumber("learningRate", config.learningRate, (v) => v >= 0, "a number >= 0");
  checkNumber("loggingSteps", config.loggingSteps, (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  checkNumber("seed", config.seed, Number.isInteger, "an integer");
  const positiveInt = (v: number) => Number.isInteger(v) && v >= 1;
  checkNumber("perDeviceTrainBatchSize", config.perDeviceTrainBatchSize, positiveInt, "an integer >= 1");
  checkNumber("gradientAccumulationSteps", config.gradientAccumulationSteps, positiveInt, "an integer >= 1");
  checkNumber("numTrainEpochs", config.numTrainEpochs, (v) => v > 0, "a number > 0");
  checkNumber("maxSteps", config.maxSteps, (v) => v === -1 || positiveInt(v), "-1 or an integer >= 1");
  checkNumber("maxGradNorm", config.maxGradNorm, (v) => v >= 0, "a number >= 0");
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
