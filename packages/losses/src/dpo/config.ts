import {
  ConfigError,
  DEFAULT_TRAINING_ARGS,
  definedFields,
  resolveTrainingArgs,
  type TrainingArgs,
  type TruncationMode,
} from "@prefkit/core";
import { checkNumber, checkOneOf, checkOptionalInt } from "../common/checks.js";

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

/**
 * Configuration of DPO training: TRL's `DPOConfig` with camelCase names and TRL's defaults, on top of the
 * loop settings of transformers' `TrainingArguments` (`TrainingArgs`: `outputDir`, `saveSteps`,
 * `lrSchedulerType`, …). Defaults come from one table, {@link DPO_DEFAULTS}; build a config with
 * {@link resolveDPOConfig}.
 */
export interface DPOConfig extends TrainingArgs {
  /**
   * Peak learning rate of AdamW.
   * @defaultValue 1e-6
   */
  learningRate: number;
  /**
   * Log metrics every this many optimizer steps.
   * @defaultValue 10
   */
  loggingSteps: number;
  /**
   * β: strength of the implicit KL constraint to the reference model (DPO paper). Higher β keeps the
   * policy closer to the reference. For IPO it is τ, the regulariser.
   * @defaultValue 0.1
   */
  beta: number;
  /**
   * Loss type(s). With several, the loss is the weighted sum (see `lossWeights`), e.g.
   * `["sigmoid", "sft"]` is RPO (MPO uses `["sigmoid", "bco_pair", "sft"]`). Names of registered user
   * losses are accepted like built-in types.
   * @defaultValue ["sigmoid"]
   */
  lossType: DPOLossName[];
  /**
   * Weight per entry of `lossType`; `null` weights every loss 1.
   * @defaultValue null
   */
  lossWeights: number[] | null;
  /**
   * ε: probability that a preference label is flipped. Used by `sigmoid` (conservative DPO), `robust`,
   * `aot`/`aot_unpaired` and `exo_pair` (which needs ε > 0, typically 1e-3). Must be in [0, 0.5).
   * @defaultValue 0
   */
  labelSmoothing: number;
  /**
   * f-divergence regulariser of f-DPO (Wang et al. 2023); `reverse_kl` is standard DPO.
   * @defaultValue "reverse_kl"
   */
  fDivergenceType: FDivergenceType;
  /**
   * α of the `alpha_divergence`.
   * @defaultValue 0.5
   */
  fAlphaDivergenceCoef: number;
  /**
   * τ of DiscoPOP (Chris Lu et al. 2024): temperature of the log-ratio modulation.
   * @defaultValue 0.05
   */
  discopopTau: number;
  /**
   * Ignore the reference model inside the loss (an implicit uniform reference); rewards still use it.
   * @defaultValue false
   */
  referenceFree: boolean;
  /**
   * Maximum prompt + completion tokens; longer sequences are truncated (see `truncationMode`). `null`: no limit.
   * @defaultValue 1024
   */
  maxLength: number | null;
  /**
   * Maximum prompt tokens; `null`: no separate prompt limit.
   * @defaultValue null
   */
  maxPromptLength: number | null;
  /**
   * Maximum completion tokens; `null`: no separate completion limit.
   * @defaultValue null
   */
  maxCompletionLength: number | null;
  /**
   * Which end of a sequence longer than `maxLength` is kept: `keep_start` cuts the completion's end and drops
   * rows whose prompt alone reaches `maxLength`; `keep_end` keeps the last `maxLength` tokens of each
   * sequence (the prompt's start goes first) and drops nothing. TRL deprecates `keep_end` (a warning is logged).
   * @defaultValue "keep_start"
   */
  truncationMode: TruncationMode;
  /**
   * Compute the reference log-probs once before training, so the reference need not stay in memory.
   * @defaultValue false
   */
  precomputeRefLogProbs: boolean;
  /**
   * Switch dropout off in the policy (and the reference), as DPO assumes deterministic log-probs.
   * @defaultValue true
   */
  disableDropout: boolean;
  /**
   * Where precomputed reference log-probs are cached (one JSON file per dataset + reference-weights
   * fingerprint). `null`: `<outputDir>/ref_logps`. prefkit-specific.
   * @defaultValue null
   */
  refLogProbsCacheDir: string | null;
  /**
   * α of RPO (Pang et al. 2024) as older TRL's `rpo_alpha`: adds α·NLL of the chosen completion to the
   * loss. `null` disables it; current TRL spells this `lossType: ["sigmoid", "sft"]`.
   * @defaultValue null
   */
  rpoAlpha: number | null;
  /**
   * Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos, else 0.
   * @defaultValue null
   */
  padTokenId: number | null;
  /**
   * Weight each pair's loss by the policy's length-normalised likelihood of both completions (WPO, Zhou et
   * al. 2024). Needs the logits, so the policy forward skips the fused LM head (more memory). Not with
   * `aot`/`aot_unpaired`.
   * @defaultValue false
   */
  useWeighting: boolean;
  /**
   * α of LD-DPO (Liu et al. 2024): weight of the tokens past the shorter completion's length;
   * `null` disables the length desensitisation.
   * @defaultValue null
   */
  ldAlpha: number | null;
  /**
   * Every `refModelSyncSteps` steps mix the policy into the reference model (TR-DPO, Gorbatovski et al.
   * 2024). Needs a separate reference (not a LoRA model) and no `precomputeRefLogProbs`; checkpoints then
   * carry the reference weights (`ref_model.safetensors`), so a resumed run continues exactly.
   * @defaultValue false
   */
  syncRefModel: boolean;
  /**
   * α of TR-DPO's soft update: ref ← α·policy + (1 − α)·ref.
   * @defaultValue 0.6
   */
  refModelMixupAlpha: number;
  /**
   * Optimizer steps between two TR-DPO reference updates.
   * @defaultValue 512
   */
  refModelSyncSteps: number;
}

/** What {@link resolveDPOConfig} accepts: any subset of {@link DPOConfig}; `lossType` may be one name or a list. */
export type DPOConfigInput = Partial<Omit<DPOConfig, "lossType">> & {
  /** Loss type(s): built-in TRL names or names of registered user losses. */
  lossType?: DPOLossName | readonly DPOLossName[];
};

/** TRL's `DPOConfig` defaults: the DPO fields and the loop fields whose default differs from `TrainingArgs`'. */
export const DPO_DEFAULTS: Readonly<
  Omit<DPOConfig, keyof TrainingArgs> & Pick<DPOConfig, "learningRate" | "loggingSteps">
> = Object.freeze({
  learningRate: 1e-6,
  loggingSteps: 10,
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
} satisfies Omit<DPOConfig, keyof TrainingArgs> & Pick<DPOConfig, "learningRate" | "loggingSteps">);

/** A fresh {@link DPOConfig} with TRL's defaults (`TrainingArgs`' then {@link DPO_DEFAULTS}). */
export function defaultDPOConfig(): DPOConfig {
  return { ...DEFAULT_TRAINING_ARGS, ...structuredClone(DPO_DEFAULTS) } as DPOConfig;
}

/** Normalises TRL's `loss_type` (a string or a list) to a non-empty list. */
export function lossTypeList(lossType: DPOLossType | readonly DPOLossType[] | undefined): DPOLossType[] {
  if (lossType === undefined) return ["sigmoid"];
  return typeof lossType === "string" ? [lossType] : [...lossType];
}

/** TRL's WPO refusal (`DPOTrainer.__init__`): the sorting losses would misalign the per-pair weights. */
export function assertWeightable(types: readonly string[]): void {
  if (types.some((t) => t === "aot" || t === "aot_unpaired")) {
    throw new ConfigError(
      "WPO-style weighting is not implemented for 'aot' or 'aot_unpaired' because those losses sort samples, " +
        "which would misalign per-pair weights.",
      { field: "useWeighting" },
    );
  }
}

/** The loss-shaping fields of `DPOConfig`, all optional, with TRL's defaults. */
export interface DPOLossOptions {
  /** β (default 0.1). */
  beta?: number;
  /** One loss type or several, summed with `lossWeights` (default `"sigmoid"`). */
  lossType?: DPOLossType | readonly DPOLossType[];
  /** One weight per loss type; `null`/omitted weights every type 1. */
  lossWeights?: readonly number[] | null;
  /** ε, the label-flip probability (default 0; `exo_pair` needs ε > 0). */
  labelSmoothing?: number;
  /** f-divergence applied to the log-ratios (default `"reverse_kl"`, standard DPO). */
  fDivergenceType?: FDivergenceType;
  /** α of `alpha_divergence` (default 0.5). */
  fAlphaDivergenceCoef?: number;
  /** τ of `discopop` (default 0.05). */
  discopopTau?: number;
  /** Take the reference log-probs as 0 inside the loss (default false). Rewards still use the reference. */
  referenceFree?: boolean;
}

/**
 * Checks the loss-related fields shared by {@link DPOConfig} and {@link DPOLossOptions}.
 * Throws a {@link ConfigError} naming the field and the allowed values.
 */
export function validateDPOLossFields(config: DPOLossOptions): void {
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
 * Checks the DPO fields of a {@link DPOConfig} (the loop fields are core's `resolveTrainingArgs`' job), and
 * refuses, with TRL's messages, the combinations TRL refuses: `useWeighting` with `aot`/`aot_unpaired`,
 * `syncRefModel` with `precomputeRefLogProbs`. Throws a {@link ConfigError} whose `field` names the offending
 * field and whose message lists the allowed values.
 * @param isRegisteredLoss when given, `lossType` entries it accepts (user losses in a registry) pass
 *   even though they are not built-in types.
 */
export function validateDPOConfig(config: DPOConfig, isRegisteredLoss?: (name: string) => boolean): void {
  const isBuiltin = (t: string): t is DPOLossType => (DPO_LOSS_TYPES as readonly string[]).includes(t);
  const custom = (t: string) => !isBuiltin(t) && isRegisteredLoss !== undefined && isRegisteredLoss(t);
  const types = Array.isArray(config.lossType) ? config.lossType : [config.lossType as unknown as string];
  if (types.length > 0 && types.every((t) => !custom(t))) {
    validateDPOLossFields(config as DPOLossOptions);
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
  if (config.rpoAlpha !== null && config.rpoAlpha !== undefined)
    checkNumber("rpoAlpha", config.rpoAlpha, (v) => v >= 0, "null or a number >= 0");
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
  // The combinations TRL's DPOTrainer.__init__ refuses, with its messages.
  if (config.useWeighting) assertWeightable(types);
  if (config.syncRefModel && config.precomputeRefLogProbs) {
    throw new ConfigError(
      "You cannot use `sync_ref_model=True` together with `precompute_ref_log_probs=True`. " +
        "`precompute_ref_log_probs=True` assumes a fixed reference model, but with `sync_ref_model=True` the " +
        "reference model is periodically updated during training, making any precomputed reference log-probs " +
        "stale. Set `precompute_ref_log_probs=False` or disable `sync_ref_model`.",
      { field: "syncRefModel" },
    );
  }
}

/**
 * A full {@link DPOConfig} from `input`: `TrainingArgs`' defaults, then {@link DPO_DEFAULTS}, then the
 * input; the loop fields validated by core's `resolveTrainingArgs`, the DPO fields by
 * {@link validateDPOConfig} (user loss names are checked against the registry when the run is composed).
 */
export function resolveDPOConfig(input: DPOConfigInput = {}): DPOConfig {
  const lossType =
    input.lossType === undefined
      ? ["sigmoid"]
      : typeof input.lossType === "string"
        ? [input.lossType]
        : [...input.lossType];
  const config = resolveTrainingArgs<DPOConfig>({
    ...structuredClone(DPO_DEFAULTS),
    ...definedFields(input),
    lossType,
  });
  validateDPOConfig(config, () => true);
  return config;
}
