import {
  ConfigError,
  DEFAULT_TRAINING_ARGS,
  definedFields,
  resolveTrainingArgs,
  type TrainingArgs,
} from "@prefkit/core";
import { checkNumber, checkOneOf, checkOptionalInt } from "../common/checks.js";
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
 * TRL's defaults, plus the older adaptive-KL fields, on top of the loop settings of transformers'
 * `TrainingArguments` (`TrainingArgs`). Defaults come from one table, {@link PPO_DEFAULTS}; build a config
 * with {@link resolvePPOConfig}.
 *
 * One PPO update samples `batchSize = perDeviceTrainBatchSize × gradientAccumulationSteps × numMiniBatches`
 * responses, then runs `numPpoEpochs` epochs over them, each split into `numMiniBatches` mini-batches of
 * `gradientAccumulationSteps` micro-batches (one optimizer step per mini-batch), as TRL. `maxSteps` counts
 * updates; when it is not set, the run trains `totalEpisodes` responses, or `numTrainEpochs` passes over the
 * prompts.
 */
export interface PPOConfig extends TrainingArgs {
  /**
   * Peak learning rate of AdamW.
   * @defaultValue 3e-6
   */
  learningRate: number;
  /**
   * Log metrics every this many updates.
   * @defaultValue 10
   */
  loggingSteps: number;
  /**
   * Prompts per micro-batch (a mini-batch is `gradientAccumulationSteps` of them).
   * @defaultValue 64
   */
  perDeviceTrainBatchSize: number;
  /**
   * The `"rollout"` loss of each micro-batch: `"ppo"` (clipped policy loss + `vfCoef` × clipped value loss)
   * or the name of a registered user loss.
   * @defaultValue "ppo"
   */
  lossType: string;
  /**
   * Total episodes (sampled responses) to train on; `null` derives it from `numTrainEpochs` × prompts.
   * Ignored when `maxSteps` is set.
   * @defaultValue null
   */
  totalEpisodes: number | null;
  /**
   * Optimisation epochs over each rollout batch.
   * @defaultValue 4
   */
  numPpoEpochs: number;
  /**
   * Mini-batches each rollout batch is split into per PPO epoch.
   * @defaultValue 1
   */
  numMiniBatches: number;
  /**
   * Maximum new tokens sampled per response.
   * @defaultValue 53
   */
  responseLength: number;
  /**
   * Sampling temperature; log-probs are temperature-scaled with it too.
   * @defaultValue 0.7
   */
  temperature: number;
  /**
   * Truncate each response after the first occurrence of this token (or eos); `null`: no truncation.
   * @defaultValue null
   */
  stopTokenId: number | null;
  /**
   * `"eos"`: truncate responses after the tokenizer's eos (TRL `stop_token`); `null`: use `stopTokenId` only.
   * @defaultValue null
   */
  stopToken: "eos" | null;
  /**
   * Subtracted from the score of responses that produced no eos; `null` disables the penalty.
   * @defaultValue null
   */
  missingEosPenalty: number | null;
  /**
   * Coefficient β of the per-token reward −β·KL (fixed unless `adapKlCtrl`).
   * @defaultValue 0.05
   */
  klCoef: number;
  /**
   * KL estimator for the penalty: `k1` (−log r) or `k3` ((r − 1) − log r).
   * @defaultValue "k1"
   */
  klEstimator: KLEstimator;
  /**
   * Use the adaptive KL controller of Ziegler et al. instead of a fixed `klCoef` (older TRL).
   * @defaultValue false
   */
  adapKlCtrl: boolean;
  /**
   * Initial coefficient of the adaptive KL controller.
   * @defaultValue 0.2
   */
  initKlCoef: number;
  /**
   * Target KL of the adaptive controller.
   * @defaultValue 6
   */
  target: number;
  /**
   * Horizon (samples) of the adaptive controller.
   * @defaultValue 10000
   */
  horizon: number;
  /**
   * Clip range c of the policy ratio: r ∈ [1 − c, 1 + c].
   * @defaultValue 0.2
   */
  cliprange: number;
  /**
   * Clip range of the value predictions around the rollout values.
   * @defaultValue 0.2
   */
  cliprangeValue: number;
  /**
   * Weight of the value loss in pg + vfCoef·vf.
   * @defaultValue 0.1
   */
  vfCoef: number;
  /**
   * Discount γ.
   * @defaultValue 1
   */
  gamma: number;
  /**
   * GAE λ.
   * @defaultValue 0.95
   */
  lam: number;
  /**
   * Whiten the per-token rewards before GAE.
   * @defaultValue false
   */
  whitenRewards: boolean;
  /**
   * Rows per forward pass during rollouts (generation, reference, value and reward scoring). TRL default 64.
   * @defaultValue 64
   */
  localRolloutForwardBatchSize: number;
  /**
   * Where V comes from; see {@link PPOValueHeadKind}. TRL's is a separate value model.
   * @defaultValue "model"
   */
  valueHead: PPOValueHeadKind;
  /**
   * Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos, else 0.
   * @defaultValue null
   */
  padTokenId: number | null;
  /**
   * Sample evaluation responses at `temperature` (seeded with `seed`, so every evaluation of the same policy
   * draws the same responses) instead of decoding greedily (TRL's `generate_completions` decodes
   * near-greedily, at temperature 0.01).
   * @defaultValue false
   */
  evalDoSample: boolean;
}

/** TRL's `PPOConfig` defaults: the PPO fields and the loop fields whose default differs from `TrainingArgs`'. */
export const PPO_DEFAULTS = Object.freeze({
  learningRate: 3e-6,
  loggingSteps: 10,
  perDeviceTrainBatchSize: 64,
  lossType: "ppo",
  totalEpisodes: null,
  numPpoEpochs: 4,
  numMiniBatches: 1,
  responseLength: 53,
  temperature: 0.7,
  stopTokenId: null,
  stopToken: null,
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
  localRolloutForwardBatchSize: 64,
  valueHead: "model",
  padTokenId: null,
  evalDoSample: false,
} satisfies Omit<PPOConfig, keyof TrainingArgs> &
  Pick<PPOConfig, "learningRate" | "loggingSteps" | "perDeviceTrainBatchSize">);

/** A fresh {@link PPOConfig} with TRL's defaults (`TrainingArgs`' then {@link PPO_DEFAULTS}). */
export function defaultPPOConfig(): PPOConfig {
  return { ...DEFAULT_TRAINING_ARGS, ...PPO_DEFAULTS };
}

/** Checks the PPO fields of a {@link PPOConfig} (the loop fields are core's `resolveTrainingArgs`' job); throws a {@link ConfigError} naming the field and the allowed values. */
export function validatePPOConfig(config: PPOConfig): void {
  const positiveInt = (v: number) => Number.isInteger(v) && v >= 1;
  const nonNegative = (v: number) => v >= 0;
  if (typeof config.lossType !== "string" || config.lossType === "") {
    throw new ConfigError(`must be a loss name, got ${JSON.stringify(config.lossType)}`, { field: "lossType" });
  }
  checkOptionalInt("totalEpisodes", config.totalEpisodes, 1);
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
  for (const field of ["adapKlCtrl", "whitenRewards", "evalDoSample"] as const) {
    if (typeof config[field] !== "boolean") throw new ConfigError("must be true or false", { field });
  }
}

/** The adaptive KL controller switch of {@link PPOConfigInput}: `true`, or its settings. */
export interface AdaptiveKlOptions {
  /** Target KL in nats (TRL 6). */
  target?: number;
  /** Horizon in samples (TRL 10000). */
  horizon?: number;
  /** Starting coefficient (older TRL's `init_kl_coef`, 0.2). */
  initKlCoef?: number;
}

/**
 * What {@link resolvePPOConfig} accepts: any subset of {@link PPOConfig}, plus `adaptiveKl`, a shorthand for
 * `adapKlCtrl: true` with `target` / `horizon` / `initKlCoef`.
 */
export type PPOConfigInput = Partial<PPOConfig> & {
  /** Switch the adaptive KL controller on (`true` or its settings); `false`/absent keeps `klCoef` fixed. */
  adaptiveKl?: boolean | AdaptiveKlOptions;
};

/**
 * A full {@link PPOConfig} from `input`: `TrainingArgs`' defaults, then {@link PPO_DEFAULTS}, then the input
 * with `adaptiveKl` expanded; the loop fields validated by core's `resolveTrainingArgs`, the PPO fields by
 * {@link validatePPOConfig}.
 * @throws ConfigError naming the bad field.
 */
export function resolvePPOConfig(input: PPOConfigInput = {}): PPOConfig {
  const { adaptiveKl, ...rest } = input;
  const fields: Partial<PPOConfig> = { ...PPO_DEFAULTS, ...definedFields(rest) };
  if (adaptiveKl !== undefined && adaptiveKl !== false) {
    const { target, horizon, initKlCoef } = typeof adaptiveKl === "object" ? adaptiveKl : {};
    Object.assign(fields, { adapKlCtrl: true }, definedFields({ target, horizon, initKlCoef }));
  }
  const config = resolveTrainingArgs<PPOConfig>(fields);
  validatePPOConfig(config);
  return config;
}
