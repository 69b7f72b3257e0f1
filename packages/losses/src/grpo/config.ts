import { ConfigError, DEFAULT_TRAINING_ARGS, resolveConfig, type TrainingArgs } from "@prefkit/core";
import { checkNumber, checkOneOf } from "../common/checks.js";
import type { MultiObjectiveAggregation, ScaleRewards } from "./advantages.js";
import { GRPO_LOSS_TYPES, type GRPOLossType } from "./loss.js";

/**
 * What GRPO and RLOO share (TRL's `GRPOConfig` and `RLOOConfig` fields of the same name): sampling
 * `numGenerations` completions per prompt, scoring them with reward functions, and the clipped update.
 * {@link GRPOConfig} and `RLOOConfig` add their own fields and defaults.
 *
 * One update (one trainer step) samples `perDeviceTrainBatchSize × gradientAccumulationSteps` completions:
 * that many / `numGenerations` prompts, each prompt's completions consecutive. It then takes `numIterations`
 * optimizer steps over them, each accumulating `gradientAccumulationSteps` micro-batches of
 * `perDeviceTrainBatchSize` completions (TRL with its default `steps_per_generation` =
 * `gradientAccumulationSteps`). `maxSteps`, `loggingSteps`, `saveSteps` and the schedule count updates.
 */
export interface GroupRolloutConfig extends TrainingArgs {
  /**
   * Peak learning rate of AdamW.
   * @defaultValue 1e-6
   */
  learningRate: number;
  /**
   * Log metrics every this many updates.
   * @defaultValue 10
   */
  loggingSteps: number;
  /** Completions sampled per prompt (G); must divide `perDeviceTrainBatchSize × gradientAccumulationSteps`, ≥ 2. */
  numGenerations: number;
  /** KL coefficient β; 0 loads no reference model at all (no frozen copy, no reference pass). */
  beta: number;
  /**
   * Maximum new tokens per completion (the generation budget; `"dr_grpo"` divides by it).
   * @defaultValue 256
   */
  maxCompletionLength: number;
  /**
   * Sampling temperature; log-probs are temperature-scaled with it too.
   * @defaultValue 1
   */
  temperature: number;
  /**
   * Nucleus sampling: keep the most likely tokens while the mass before them is < topP (1 = off).
   * @defaultValue 1
   */
  topP: number;
  /**
   * Keep only the k most likely tokens when sampling (0 = off).
   * @defaultValue 0
   */
  topK: number;
  /**
   * Optimizer steps per rollout (μ of the GRPO paper): each reuses the rollout with the log-probs it was
   * sampled with as log π_old, so the ratio and the clipping matter from the second step on.
   * @defaultValue 1
   */
  numIterations: number;
  /**
   * Lower clip bound ε: ratios below 1 − ε are clipped.
   * @defaultValue 0.2
   */
  epsilon: number;
  /**
   * Upper clip bound ε_high (ratios above 1 + ε_high are clipped); `null` means `epsilon`. DAPO uses 0.28.
   * @defaultValue null
   */
  epsilonHigh: number | null;
  /**
   * One weight per reward function in the weighted reward sum; `null` weights every function 1.
   * @defaultValue null
   */
  rewardWeights: number[] | null;
  /**
   * Leave completions that hit `maxCompletionLength` without eos out of the loss (DAPO): their tokens are
   * masked (they still count in the reward statistics).
   * @defaultValue false
   */
  maskTruncatedCompletions: boolean;
}

/** The defaults GRPO and RLOO share (TRL's, and the loop fields whose default differs from `TrainingArgs`'). */
export const GROUP_ROLLOUT_DEFAULTS = Object.freeze({
  learningRate: 1e-6,
  loggingSteps: 10,
  maxCompletionLength: 256,
  temperature: 1,
  topP: 1,
  topK: 0,
  numIterations: 1,
  epsilon: 0.2,
  epsilonHigh: null,
  rewardWeights: null,
  maskTruncatedCompletions: false,
} satisfies Omit<GroupRolloutConfig, keyof TrainingArgs | "numGenerations" | "beta"> &
  Pick<GroupRolloutConfig, "learningRate" | "loggingSteps">);

/**
 * Configuration of GRPO training: TRL's `GRPOConfig` (v0.29.1) in camelCase with TRL's defaults, on top of
 * the loop settings of transformers' `TrainingArguments` (`TrainingArgs`). Defaults come from one table,
 * {@link GRPO_DEFAULTS}; build a config with {@link resolveGRPOConfig}. See {@link GroupRolloutConfig} for
 * what one update is.
 */
export interface GRPOConfig extends GroupRolloutConfig {
  /**
   * Completions sampled per prompt (G); must divide `perDeviceTrainBatchSize × gradientAccumulationSteps`, ≥ 2.
   * @defaultValue 8
   */
  numGenerations: number;
  /**
   * KL coefficient β of the per-token k3 KL to the reference; 0 loads no reference model at all (no frozen
   * copy, no reference pass). DeepSeek-R1 used 0.001; earlier TRL versions defaulted to 0.04.
   * @defaultValue 0
   */
  beta: number;
  /**
   * How per-token losses become the loss: `"grpo"` (mean over completions of each one's token mean), `"bnpo"`
   * (token mean of the micro-batch), `"dr_grpo"` (token sum / (rows × `maxCompletionLength`)), `"dapo"` (token
   * sum / valid tokens of the whole optimizer step, the default); or the name of a registered user loss on
   * `"group-rollout"` batches.
   * @defaultValue "dapo"
   */
  lossType: GRPOLossType | (string & {});
  /**
   * Scaling of the group-centred rewards: by the group's std (`"group"` or `true`), the batch's std
   * (`"batch"`), or none (`"none"` or `false`, Dr. GRPO).
   * @defaultValue "group"
   */
  scaleRewards: ScaleRewards;
  /**
   * How several reward functions combine: `"sum_then_normalize"` (weighted sum, then the group advantages) or
   * `"normalize_then_sum"` (GDPO: each function normalised in its group, summed, normalised over the batch).
   * @defaultValue "sum_then_normalize"
   */
  multiObjectiveAggregation: MultiObjectiveAggregation;
  /**
   * Two-sided clipping (INTELLECT-2): the unclipped ratio is capped at `delta` (> 1 + ε); `null` = off.
   * @defaultValue null
   */
  delta: number | null;
}

/** TRL's `GRPOConfig` defaults: the GRPO fields and the loop fields whose default differs from `TrainingArgs`'. */
export const GRPO_DEFAULTS = Object.freeze({
  ...GROUP_ROLLOUT_DEFAULTS,
  numGenerations: 8,
  beta: 0,
  lossType: "dapo",
  scaleRewards: "group",
  multiObjectiveAggregation: "sum_then_normalize",
  delta: null,
} satisfies Omit<GRPOConfig, keyof TrainingArgs> & Pick<GRPOConfig, "learningRate" | "loggingSteps">);

/** A fresh {@link GRPOConfig} with TRL's defaults (`TrainingArgs`' then {@link GRPO_DEFAULTS}). */
export function defaultGRPOConfig(): GRPOConfig {
  return { ...DEFAULT_TRAINING_ARGS, ...GRPO_DEFAULTS };
}

const positiveInt = (v: number) => Number.isInteger(v) && v >= 1;

/**
 * Checks the fields GRPO and RLOO share; throws a {@link ConfigError} naming the field and the allowed
 * values. `numGenerations` must be ≥ 2 and divide an update's completions (TRL's `generation_batch_size`).
 */
export function validateGroupRolloutConfig(config: GroupRolloutConfig): void {
  checkNumber("numGenerations", config.numGenerations, (v) => Number.isInteger(v) && v >= 2, "an integer >= 2");
  const completions = config.perDeviceTrainBatchSize * config.gradientAccumulationSteps;
  if (completions % config.numGenerations !== 0) {
    throw new ConfigError(
      `must divide perDeviceTrainBatchSize × gradientAccumulationSteps (${completions} completions per update), ` +
        `got ${config.numGenerations}`,
      { field: "numGenerations" },
    );
  }
  checkNumber("beta", config.beta, (v) => v >= 0, "a number >= 0");
  checkNumber("maxCompletionLength", config.maxCompletionLength, positiveInt, "an integer >= 1");
  checkNumber("temperature", config.temperature, (v) => v > 0, "a number > 0");
  checkNumber("topP", config.topP, (v) => v > 0 && v <= 1, "a number in (0, 1]");
  checkNumber("topK", config.topK, (v) => Number.isInteger(v) && v >= 0, "an integer >= 0 (0 = off)");
  checkNumber("numIterations", config.numIterations, positiveInt, "an integer >= 1");
  checkNumber("epsilon", config.epsilon, (v) => v >= 0, "a number >= 0");
  if (config.epsilonHigh !== null) {
    checkNumber("epsilonHigh", config.epsilonHigh, (v) => v >= 0, "null or a number >= 0");
  }
  if (config.rewardWeights !== null) {
    if (!Array.isArray(config.rewardWeights)) {
      throw new ConfigError("must be null or a list of numbers", { field: "rewardWeights" });
    }
    config.rewardWeights.forEach((w, i) => {
      checkNumber(`rewardWeights[${i}]`, w, () => true, "a finite number");
    });
  }
  if (typeof config.maskTruncatedCompletions !== "boolean") {
    throw new ConfigError("must be true or false", { field: "maskTruncatedCompletions" });
  }
}

/** Throws a {@link ConfigError} unless `lossType` is a non-empty loss name. */
export function checkLossName(lossType: unknown): void {
  if (typeof lossType !== "string" || lossType === "") {
    throw new ConfigError(`must be a loss name, got ${JSON.stringify(lossType)}`, { field: "lossType" });
  }
}

/** Checks a {@link GRPOConfig}'s GRPO fields (the loop fields are core's `resolveTrainingArgs`' job). */
export function validateGRPOConfig(config: GRPOConfig): void {
  validateGroupRolloutConfig(config);
  checkLossName(config.lossType);
  if (typeof config.scaleRewards !== "boolean") {
    checkOneOf("scaleRewards", config.scaleRewards, ["group", "batch", "none"] as const);
  }
  checkOneOf("multiObjectiveAggregation", config.multiObjectiveAggregation, [
    "sum_then_normalize",
    "normalize_then_sum",
  ] as const);
  if (config.delta !== null) checkNumber("delta", config.delta, (v) => v > 0, "null or a number > 0");
}

/** True when `lossType` is one of TRL's aggregations (the built-in `"grpo"` loss), not a user loss's name. */
export function isGRPOAggregation(lossType: string): lossType is GRPOLossType {
  return (GRPO_LOSS_TYPES as readonly string[]).includes(lossType);
}

/**
 * A full {@link GRPOConfig} from `input`: `TrainingArgs`' defaults, then {@link GRPO_DEFAULTS}, then the
 * input; the loop fields validated by core's `resolveTrainingArgs`, the GRPO fields by {@link validateGRPOConfig}.
 * @throws ConfigError naming the bad field.
 */
export function resolveGRPOConfig(input: Partial<GRPOConfig> = {}): GRPOConfig {
  return resolveConfig<GRPOConfig>(GRPO_DEFAULTS, input, validateGRPOConfig);
}
