import { ConfigError, DEFAULT_TRAINING_ARGS, type TrainingArgs } from "@prefkit/core";
import { checkNumber, checkOneOf, checkOptionalInt } from "../dpo/config.js";
import type { KLEstimator } from "./kl.js";

/**
 * Where the value function V(s_t) comes from:
 * - `"model"` (TRL's default): a separate value model, a `SequenceClassifier` with one label whose `score`
 *   head is read at every position (TRL initialises it from the reward model). Costs a second body:
 *   one more forward at rollout time and one more forward + backward per PPO micro-batch.
 * - `"policy"`: a scalar head (`v_head.summary`, Linear hidden → 1 with bias) on the policy's final hidden
 *   states. The policy forward yields logits and values from ONE body pass, so it is the cheaper option.
 */
export type PPOValueHeadKind = "model" | "policy";

/**
 * Configuration of PPO training: TRL's `PPOConfig` (PPOv2, with `OnPolicyConfig`) in camelCase, with
 * TRL's defaults, plus the older adaptive-KL fields and the loop settings of transformers'
 * `TrainingArguments` (`outputDir`, `saveSteps`, ...).
 *
 * One PPO update samples `batchSize = perDeviceTrainBatchSize × gradientAccumulationSteps × numMiniBatches`
 * responses, then runs `numPpoEpochs` epochs over them, each split into `numMiniBatches` mini-batches of
 * `gradientAccumulationSteps` micro-batches (one optimizer step per mini-batch), as TRL.
 */
export interface PPOConfig extends TrainingArgs {
  /** Peak learning rate (TRL default 3e-6). */
  learningRate: number;
  /** Log metrics every this many updates. */
  loggingSteps: number;
  /** Seed for sampling, init and data order. */
  seed: number;
  /** Prompts per device per micro-batch. */
  perDeviceTrainBatchSize: number;
  /** Micro-batches accumulated per optimizer step. */
  gradientAccumulationSteps: number;
  /** Passes over the prompt set (used when `totalEpisodes` is null). */
  numTrainEpochs: number;
  /** Total episodes (sampled responses) to train on; `null` derives it from `numTrainEpochs`. */
  totalEpisodes: number | null;
  /** Gradient clipping by global norm; 0 disables it. */
  maxGradNorm: number;
  /** Optimisation epochs over each rollout batch. */
  numPpoEpochs: number;
  /** Mini-batches each rollout batch is split into per PPO epoch. */
  numMiniBatches: number;
  /** Maximum new tokens sampled per response. */
  responseLength: number;
  /** Sampling temperature; log-probs are temperature-scaled with it too. */
  temperature: number;
  /** Truncate each response after the first occurrence of this token (or eos); `null`: no truncation. */
  stopTokenId: number | null;
  /** Subtracted from the score of responses that produced no eos; `null` disables the penalty. */
  missingEosPenalty: number | null;
  /** Coefficient β of the per-token reward −β·KL (fixed unless `adapKlCtrl`). */
  klCoef: number;
  /** KL estimator for the penalty: `k1` (−log r) or `k3` ((r − 1) − log r). */
  klEstimator: KLEstimator;
  /** Use the adaptive KL controller of Ziegler et al. instead of a fixed `klCoef` (older TRL). */
  adapKlCtrl: boolean;
  /** Initial coefficient of the adaptive KL controller. */
  initKlCoef: number;
  /** Target KL of the adaptive controller. */
  target: number;
  /** Horizon (samples) of the adaptive controller. */
  horizon: number;
  /** Clip range c of the policy ratio: r ∈ [1 − c, 1 + c]. */
  cliprange: number;
  /** Clip range of the value predictions around the rollout values. */
  cliprangeValue: number;
  /** Weight of the value loss in pg + vfCoef·vf. */
  vfCoef: number;
  /** Discount γ. */
  gamma: number;
  /** GAE λ. */
  lam: number;
  /** Whiten the per-token rewards before GAE. */
  whitenRewards: boolean;
  /** `"eos"`: truncate responses after the tokenizer's eos (TRL `stop_token`); `null`: use `stopTokenId` only. */
  stopToken: "eos" | null;
  /** Rows per forward pass during rollouts (generation, reference, value and reward scoring). TRL default 64. */
  localRolloutForwardBatchSize: number;
  /** Where V comes from; see {@link PPOValueHeadKind}. Default `"model"` (TRL). */
  valueHead: PPOValueHeadKind;
  /** Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos, else 0. */
  padTokenId: number | null;
}

/** A fresh {@link PPOConfig} with TRL's defaults. */
export function defaultPPOConfig(): PPOConfig {
  return {
    ...DEFAULT_TRAINING_ARGS,
    maxSteps: -1,
    learningRate: 3e-6,
    loggingSteps: 10,
    seed: 42,
    perDeviceTrainBatchSize: 64,
    gradientAccumulationSteps: 1,
    numTrainEpochs: 3,
    totalEpisodes: null,
    maxGradNorm: 1,
    numPpoEpochs: 4,
    numMiniBatches: 1,
    responseLength: 53,
    temperature: 0.7,
    stopTokenId: null,
    missingEosPenalty: null,
    klCoef: 0.05,
    klEstimator: "k1",
    adapKlCtrl: false,
    initKlCoef: 0.2,
    target: 6,
    horizon: 10000,
    cliprange: 0.2,
    cliprangeValue: 0.2,
    vfCoef: 0.1,
    gamma: 1,
    lam: 0.95,
    whitenRewards: false,
    stopToken: null,
    localRolloutForwardBatchSize: 64,
    valueHead: "model",
    padTokenId: null,
  };
}

/** Checks a {@link PPOConfig}; throws a {@link ConfigError} naming the field and the allowed values. */
export function validatePPOConfig(config: PPOConfig): void {
  const positiveInt = (v: number) => Number.isInteger(v) && v >= 1;
  const nonNegative = (v: number) => v >= 0;
  checkNumber("learningRate", config.learningRate, nonNegative, "a number >= 0");
  checkNumber("loggingSteps", config.loggingSteps, positiveInt, "an integer >= 1");
  checkNumber("seed", config.seed, Number.isInteger, "an integer");
  checkNumber("perDeviceTrainBatchSize", config.perDeviceTrainBatchSize, positiveInt, "an integer >= 1");
  checkNumber("gradientAccumulationSteps", config.gradientAccumulationSteps, positiveInt, "an integer >= 1");
  checkNumber("numTrainEpochs", config.numTrainEpochs, (v) => v > 0, "a number > 0");
  checkOptionalInt("totalEpisodes", config.totalEpisodes, 1);
  checkNumber("maxGradNorm", config.maxGradNorm, nonNegative, "a number >= 0");
  checkNumber("numPpoEpochs", config.numPpoEpochs, positiveInt, "an integer >= 1");
  checkNumber("numMiniBatches", config.numMiniBatches, positiveInt, "an integer >= 1");
  checkNumber("responseLength", config.responseLength, positiveInt, "an integer >= 1");
  checkNumber("temperature", config.temperature, (v) => v > 0, "a number > 0");
  checkOptionalInt("stopTokenId", config.stopTokenId, 0);
  if (config.missingEosPenalty !== null) {
    checkNumber("missingEosPenalty", config.missingEosPenalty, () => true, "null or a finite number");
  }
  checkNumber("klCoef", config.klCoef, nonNegative, "a number >= 0");
  checkOneOf("klEstimator", config.klEstimator, ["k1", "k3"] as const);
  checkNumber("initKlCoef", config.initKlCoef, nonNegative, "a number >= 0");
  checkNumber("target", config.target, (v) => v > 0, "a number > 0");
  checkNumber("horizon", config.horizon, (v) => v > 0, "a number > 0");
  checkNumber("cliprange", config.cliprange, (v) => v > 0 && v < 1, "a number in (0, 1)");
  checkNumber("cliprangeValue", config.cliprangeValue, (v) => v > 0, "a number > 0");
  checkNumber("vfCoef", config.vfCoef, nonNegative, "a number >= 0");
  checkNumber("gamma", config.gamma, (v) => v >= 0 && v <= 1, "a number in [0, 1]");
  checkNumber("lam", config.lam, (v) => v >= 0 && v <= 1, "a number in [0, 1]");
  checkNumber("localRolloutForwardBatchSize", config.localRolloutForwardBatchSize, positiveInt, "an integer >= 1");
  checkOneOf("valueHead", config.valueHead, ["model", "policy"] as const);
  if (config.stopToken !== null) checkOneOf("stopToken", config.stopToken, ["eos"] as const);
  checkOptionalInt("padTokenId", config.padTokenId ?? null, 0);
  for (const field of ["adapKlCtrl", "whitenRewards"] as const) {
    if (typeof config[field] !== "boolean") throw new ConfigError("must be true or false", { field });
  }
}

/** The adaptive KL controller switch of {@link PPOTrainingArguments}: `true`, or its settings. */
export interface AdaptiveKlOptions {
  /** Target KL in nats (TRL 6). */
  target?: number;
  /** Horizon in samples (TRL 10000). */
  horizon?: number;
  /** Starting coefficient (older TRL's `init_kl_coef`, 0.2). */
  initKlCoef?: number;
}

/**
 * `PPOTrainer` arguments: any subset of {@link PPOConfig}, plus `adaptiveKl`, a shorthand for
 * `adapKlCtrl: true` with `target` / `horizon` / `initKlCoef`.
 */
export type PPOTrainingArguments = Partial<PPOConfig> & {
  /** Switch the adaptive KL controller on (`true` or its settings); `false`/absent keeps `klCoef` fixed. */
  adaptiveKl?: boolean | AdaptiveKlOptions;
};

/**
 * Fill TRL's defaults into `args`, expand `adaptiveKl`, and validate.
 * @throws ConfigError naming the bad field.
 */
export function resolvePPOConfig(args: PPOTrainingArguments = {}): PPOConfig {
  const { adaptiveKl, ...rest } = args;
  const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Partial<PPOConfig>;
  const config: PPOConfig = { ...defaultPPOConfig(), ...defined };
  if (adaptiveKl !== undefined && adaptiveKl !== false) {
    config.adapKlCtrl = true;
    if (typeof adaptiveKl === "object") {
      if (adaptiveKl.target !== undefined) config.target = adaptiveKl.target;
      if (adaptiveKl.horizon !== undefined) config.horizon = adaptiveKl.horizon;
      if (adaptiveKl.initKlCoef !== undefined) config.initKlCoef = adaptiveKl.initKlCoef;
    }
  }
  validatePPOConfig(config);
  return config;
}
