import { ConfigError, DEFAULT_TRAINING_ARGS, resolveTrainingArgs, type TrainingArgs } from "@prefkit/core";

/** Every DPO loss type TRL offers (`DPOConfig.loss_type`). */
export const DPO_LOSS_TYPES = [
  "sigmoid",
  "hinge",
  "ipo",
  "robust",
  "exo_pair",
  "nca_pair",
  "bco_pair",
  "sppo_hard",
  "aot",
  "aot_unpaired",
  "apo_zero",
  "apo_down",
  "discopop",
  "sigmoid_norm",
  "sft",
] as const;

/** One DPO loss type, e.g. `"sigmoid"` (standard DPO) or `"ipo"`. */
export type DPOLossType = (typeof DPO_LOSS_TYPES)[number];

/**
 * A loss name as `DPOConfig.lossType` accepts it: a built-in {@link DPOLossType} or the name of a loss a
 * user registered in the loss registry (`registerLoss`, a `lossPlugin`), which the `DPOTrainer` resolves
 * exactly like `"sigmoid"`.
 */
export type DPOLossName = DPOLossType | (string & {});

/** The f-divergences of f-DPO (`DPOConfig.f_divergence_type`). */
export const F_DIVERGENCE_TYPES = ["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"] as const;

/** How the log-ratio u = log πθ − log πref is mapped to a score before the loss (f-DPO). */
export type FDivergenceType = (typeof F_DIVERGENCE_TYPES)[number];

/** Truncation side when a prompt + completion exceeds `maxLength`. */
export type TruncationMode = "keep_start" | "keep_end";

/**
 * Configuration of DPO training: TRL's `DPOConfig` with camelCase names and TRL's defaults, including
 * the loop settings of transformers' `TrainingArguments` it extends (`outputDir`, `saveSteps`,
 * `lrSchedulerType`, `warmupRatio`, `saveTotalLimit`, ...).
 * A plain object; build one with {@link defaultDPOConfig} and check it with {@link validateDPOConfig}.
 */
export interface DPOConfig extends TrainingArgs {
  /** Peak learning rate (TRL default 1e-6). */
  learningRate: number;
  /** Log metrics every this many optimizer steps. */
  loggingSteps: number;
  /** Seed for weight init, dropout and data order, so runs reproduce. */
  seed: number;
  /** Prompts per device per micro-batch (each gives one chosen and one rejected row). */
  perDeviceTrainBatchSize: number;
  /** Micro-batches accumulated per optimizer step. */
  gradientAccumulationSteps: number;
  /** Passes over the training set (ignored when `maxSteps` > 0). */
  numTrainEpochs: number;
  /** Total optimizer steps; -1 means "derive from `numTrainEpochs`". */
  maxSteps: number;
  /** Gradient clipping by global norm; 0 disables it. */
  maxGradNorm: number;
  /**
   * β: strength of the implicit KL constraint to the reference model (DPO paper). Higher β keeps the
   * policy closer to the reference. For IPO it is τ, the regulariser.
   */
  beta: number;
  /**
   * Loss type(s). With several, the loss is the weighted sum (see `lossWeights`), e.g.
   * `["sigmoid", "sft"]` is RPO (MPO uses `["sigmoid", "bco_pair", "sft"]`).
   */
  lossType: DPOLossName[];
  /** Weight per entry of `lossType`; `null` weights every loss 1. */
  lossWeights: number[] | null;
  /**
   * ε: probability that a preference label is flipped. Used by `sigmoid` (conservative DPO), `robust`,
   * `aot`/`aot_unpaired` and `exo_pair` (which needs ε > 0, typically 1e-3). Must be in [0, 0.5).
   */
  labelSmoothing: number;
  /** f-divergence regulariser of f-DPO (Wang et al. 2023); `reverse_kl` is standard DPO. */
  fDivergenceType: FDivergenceType;
  /** α of the `alpha_divergence`. */
  fAlphaDivergenceCoef: number;
  /** τ of DiscoPOP (Chris Lu et al. 2024): temperature of the log-ratio modulation. */
  discopopTau: number;
  /** Ignore the reference model inside the loss (an implicit uniform reference); rewards still use it. */
  referenceFree: boolean;
  /** Maximum prompt + completion tokens; longer rows are truncated (see `truncationMode`). `null`: no limit. */
  maxLength: number | null;
  /** Maximum prompt tokens; `null`: no separate prompt limit. */
  maxPromptLength: number | null;
  /** Maximum completion tokens; `null`: no separate completion limit. */
  maxCompletionLength: number | null;
  /** Which end of an over-long sequence is kept. */
  truncationMode: TruncationMode;
  /** Compute the reference log-probs once before training, so the reference need not stay in memory. */
  precomputeRefLogProbs: boolean;
  /** Switch dropout off in the policy (and the reference), as DPO assumes deterministic log-probs. */
  disableDropout: boolean;
  /**
   * Where precomputed reference log-probs are cached (one JSON file per dataset + reference-weights
   * fingerprint). `null`: `<outputDir>/ref_logps`. prefkit-specific.
   */
  refLogProbsCacheDir: string | null;
  /**
   * α of RPO (Pang et al. 2024) as older TRL's `rpo_alpha`: adds α·NLL of the chosen completion to the
   * loss. `null` (default) disables it; current TRL spells this `lossType: ["sigmoid", "sft"]`.
   */
  rpoAlpha: number | null;
  /** Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos, else 0. */
  padTokenId: number | null;
  /** Weight pairs by policy likelihood (WPO, Zhou et al. 2024). */
  useWeighting: boolean;
  /**
   * α of LD-DPO (Liu et al. 2024): weight of the tokens past the shorter completion's length;
   * `null` disables the length desensitisation.
   */
  ldAlpha: number | null;
  /** Periodically mix the policy into the reference model (TR-DPO, Gorbatovski et al. 2024). */
  syncRefModel: boolean;
  /** α of TR-DPO's soft update: ref ← α·policy + (1 − α)·ref. */
  refModelMixupAlpha: number;
  /** Optimizer steps between two TR-DPO reference updates. */
  refModelSyncSteps: number;
}

/** A fresh {@link DPOConfig} with TRL's defaults. */
export function defaultDPOConfig(): DPOConfig {
  return {
    ...DEFAULT_TRAINING_ARGS,
    learningRate: 1e-6,
    loggingSteps: 10,
    seed: 42,
    perDeviceTrainBatchSize: 8,
    gradientAccumulationSteps: 1,
    numTrainEpochs: 3,
    maxSteps: -1,
    maxGradNorm: 1,
    beta: 0.1,
    lossType: ["sigmoid"],
    lossWeights: null,
    labelSmoothing: 0,
    fDivergenceType: "reverse_kl",
    fAlphaDivergenceCoef: 0.5,
    discopopTau: 0.05,
    referenceFree: false,
    maxLength: 1024,
    maxPromptLength: null,
    maxCompletionLength: null,
    truncationMode: "keep_start",
    precomputeRefLogProbs: false,
    refLogProbsCacheDir: null,
    rpoAlpha: null,
    padTokenId: null,
    disableDropout: true,
    useWeighting: false,
    ldAlpha: null,
    syncRefModel: false,
    refModelMixupAlpha: 0.6,
    refModelSyncSteps: 512,
  };
}

/** Throws a {@link ConfigError} naming `field` unless `value` is a finite number satisfying `ok`. */
export function checkNumber(field: string, value: unknown, ok: (v: number) => boolean, allowed: string): void {
  if (typeof value !== "number" || !Number.isFinite(value) || !ok(value)) {
    throw new ConfigError(`must be ${allowed}, got ${JSON.stringify(value)}`, { field });
  }
}

/** Throws a {@link ConfigError} naming `field` unless `value` is one of `allowed`. */
export function checkOneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): asserts value is T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${JSON.stringify(value)}`, {
      field,
    });
  }
}

/** Throws a {@link ConfigError} naming `field` unless `value` is `null` or an integer ≥ `min`. */
export function checkOptionalInt(field: string, value: unknown, min: number): void {
  if (value === null) return;
  checkNumber(field, value, (v) => Number.isInteger(v) && v >= min, `null or an integer >= ${min}`);
}

/** Normalises TRL's `loss_type` (a string or a list) to a non-empty list. */
export function lossTypeList(lossType: DPOLossType | readonly DPOLossType[] | undefined): DPOLossType[] {
  if (lossType === undefined) return ["sigmoid"];
  return typeof lossType === "string" ? [lossType] : [...lossType];
}

/**
 * Checks the loss-related fields shared by {@link DPOConfig} and `DPOLossOptions`.
 * Throws a {@link ConfigError} naming the field and the allowed values.
 */
export function validateDPOLossFields(config: {
  beta?: number;
  lossType?: DPOLossType | readonly DPOLossType[];
  lossWeights?: readonly number[] | null;
  labelSmoothing?: number;
  fDivergenceType?: FDivergenceType;
  fAlphaDivergenceCoef?: number;
  discopopTau?: number;
}): void {
  if (config.beta !== undefined) checkNumber("beta", config.beta, (v) => v > 0, "a number > 0");
  const types = config.lossType;
  if (types !== undefined && typeof types !== "string" && (!Array.isArray(types) || types.length === 0)) {
    throw new ConfigError(`must be a loss type or a non-empty list of them (${DPO_LOSS_TYPES.join(", ")})`, {
      field: "lossType",
    });
  }
  const list = lossTypeList(types);
  list.forEach((t, i) => {
    checkOneOf(typeof types === "string" ? "lossType" : `lossType[${i}]`, t, DPO_LOSS_TYPES);
  });
  if (config.lossWeights !== undefined && config.lossWeights !== null) {
    if (!Array.isArray(config.lossWeights) || config.lossWeights.length !== list.length) {
      throw new ConfigError(`must be null or a list of ${list.length} numbers, one per loss type`, {
        field: "lossWeights",
      });
    }
    config.lossWeights.forEach((w, i) => {
      checkNumber(`lossWeights[${i}]`, w, () => true, "a finite number");
    });
  }
  const eps = config.labelSmoothing ?? 0;
  checkNumber("labelSmoothing", eps, (v) => v >= 0 && v < 0.5, "a number in [0, 0.5)");
  if (list.includes("exo_pair") && eps <= 0) {
    throw new ConfigError('must be > 0 for loss type "exo_pair" (1e-3 is typical)', { field: "labelSmoothing" });
  }
  if (config.fDivergenceType !== undefined) checkOneOf("fDivergenceType", config.fDivergenceType, F_DIVERGENCE_TYPES);
  if (config.fAlphaDivergenceCoef !== undefined) {
    checkNumber("fAlphaDivergenceCoef", config.fAlphaDivergenceCoef, () => true, "a finite number");
  }
  if (config.discopopTau !== undefined) checkNumber("discopopTau", config.discopopTau, (v) => v > 0, "a number > 0");
}

/**
 * Checks a {@link DPOConfig}. Throws a {@link ConfigError} whose `field` names the offending field
 * and whose message lists the allowed values.
 * @param isRegisteredLoss when given, `lossType` entries it accepts (user losses in a registry) pass
 *   even though they are not built-in types.
 */
export function validateDPOConfig(config: DPOConfig, isRegisteredLoss?: (name: string) => boolean): void {
  const isBuiltin = (t: string): t is DPOLossType => (DPO_LOSS_TYPES as readonly string[]).includes(t);
  const custom = (t: string) => !isBuiltin(t) && isRegisteredLoss !== undefined && isRegisteredLoss(t);
  const types = Array.isArray(config.lossType) ? config.lossType : [config.lossType as unknown as string];
  if (types.length > 0 && types.every((t) => !custom(t))) {
    validateDPOLossFields(config as Parameters<typeof validateDPOLossFields>[0]);
  } else {
    // Registered user losses are checked by the registry; validate the rest with the built-in subset.
    const builtin = types.filter((t) => !custom(t)) as DPOLossType[];
    validateDPOLossFields({ ...config, lossType: builtin.length > 0 ? builtin : ["sigmoid"], lossWeights: null });
    if (
      config.lossWeights !== null &&
      (!Array.isArray(config.lossWeights) || config.lossWeights.length !== types.length)
    ) {
      throw new ConfigError(`must be null or a list of ${types.length} numbers, one per loss type`, {
        field: "lossWeights",
      });
    }
  }
  resolveTrainingArgs<TrainingArgs>(config);
  if (config.rpoAlpha !== null && config.rpoAlpha !== undefined)
    checkNumber("rpoAlpha", config.rpoAlpha, (v) => v >= 0, "null or a number >= 0");
  checkNumber("learningRate", config.learningRate, (v) => v >= 0, "a number >= 0");
  checkNumber("loggingSteps", config.loggingSteps, (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  checkNumber("seed", config.seed, Number.isInteger, "an integer");
  checkNumber(
    "perDeviceTrainBatchSize",
    config.perDeviceTrainBatchSize,
    (v) => Number.isInteger(v) && v >= 1,
    "an integer >= 1",
  );
  checkNumber(
    "gradientAccumulationSteps",
    config.gradientAccumulationSteps,
    (v) => Number.isInteger(v) && v >= 1,
    "an integer >= 1",
  );
  checkNumber("numTrainEpochs", config.numTrainEpochs, (v) => v > 0, "a number > 0");
  checkNumber("maxSteps", config.maxSteps, (v) => Number.isInteger(v) && (v === -1 || v >= 1), "-1 or an integer >= 1");
  checkNumber("maxGradNorm", config.maxGradNorm, (v) => v >= 0, "a number >= 0");
  checkOptionalInt("maxLength", config.maxLength, 1);
  checkOptionalInt("maxPromptLength", config.maxPromptLength, 1);
  checkOptionalInt("maxCompletionLength", config.maxCompletionLength, 1);
  checkOneOf("truncationMode", config.truncationMode, ["keep_start", "keep_end"] as const);
  if (config.ldAlpha !== null)
    checkNumber("ldAlpha", config.ldAlpha, (v) => v >= 0 && v <= 1, "null or a number in [0, 1]");
  checkNumber("refModelMixupAlpha", config.refModelMixupAlpha, (v) => v >= 0 && v <= 1, "a number in [0, 1]");
  checkNumber("refModelSyncSteps", config.refModelSyncSteps, (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  for (const field of [
    "referenceFree",
    "precomputeRefLogProbs",
    "disableDropout",
    "useWeighting",
    "syncRefModel",
  ] as const) {
    if (typeof config[field] !== "boolean") {
      throw new ConfigError(`must be true or false, got ${JSON.stringify(config[field])}`, { field });
    }
  }
}
