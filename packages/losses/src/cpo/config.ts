import { DEFAULT_TRAINING_ARGS, resolveConfig, type TrainingArgs } from "@prefkit/core";
import { checkNumber, checkOptionalInt } from "../common/checks.js";
import { CPO_LOSS_TYPES, type CPOLossType, validateCPOLossOptions } from "./loss.js";

/**
 * Configuration of CPO training (contrastive preference optimisation, Xu et al. 2024) and its SimPO and AlphaPO
 * variants, all reference-free: TRL's `CPOConfig` with camelCase names and TRL's defaults, on top of
 * `TrainingArgs`. Defaults come from one table, {@link CPO_DEFAULTS}; build a config with {@link resolveCPOConfig}.
 */
export interface CPOConfig extends TrainingArgs {
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
   * β: temperature of the CPO loss (0.1 to 0.5 typical); for `ipo` the regulariser τ.
   * @defaultValue 0.1
   */
  beta: number;
  /**
   * `"sigmoid"` (CPO), `"hinge"`, `"ipo"`, `"simpo"` (SimPO: length-normalised with the margin γ) or
   * `"alphapo"` (TRL's sugar for `"simpo"` with `cpoAlpha` 0), or the name of a registered reference-free loss.
   * @defaultValue "sigmoid"
   */
  lossType: CPOLossType | "alphapo" | (string & {});
  /**
   * ε: label smoothing of the logistic losses (`sigmoid`, `simpo`).
   * @defaultValue 0
   */
  labelSmoothing: number;
  /**
   * Weight of the chosen NLL (the behaviour-cloning regulariser); SimPO uses 0.
   * @defaultValue 1
   */
  cpoAlpha: number;
  /**
   * SimPO's target reward margin γ (only `simpo`).
   * @defaultValue 0.5
   */
  simpoGamma: number;
  /**
   * AlphaPO's α: 0 uses log-prob rewards; otherwise each log-prob x becomes (1 − e^{−αx})/α before the difference.
   * @defaultValue 0
   */
  alpha: number;
  /**
   * Maximum prompt + completion tokens; longer rows are truncated keeping the start. `null`: no limit.
   * @defaultValue 1024
   */
  maxLength: number | null;
  /**
   * Maximum completion tokens; `null`: no separate completion limit.
   * @defaultValue null
   */
  maxCompletionLength: number | null;
  /**
   * Switch dropout off, so log-probs are deterministic.
   * @defaultValue true
   */
  disableDropout: boolean;
  /**
   * Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos, else 0.
   * @defaultValue null
   */
  padTokenId: number | null;
}

/** TRL's `CPOConfig` defaults: the CPO fields and the loop fields whose default differs from `TrainingArgs`'. */
export const CPO_DEFAULTS = Object.freeze({
  learningRate: 1e-6,
  loggingSteps: 10,
  beta: 0.1,
  lossType: "sigmoid",
  labelSmoothing: 0,
  cpoAlpha: 1,
  simpoGamma: 0.5,
  alpha: 0,
  maxLength: 1024,
  maxCompletionLength: null,
  disableDropout: true,
  padTokenId: null,
} satisfies Omit<CPOConfig, keyof TrainingArgs> & Pick<CPOConfig, "learningRate" | "loggingSteps">);

/** True when `lossType` is one of CPO's own loss types (`"alphapo"` included). */
export function isCPOLossType(lossType: string): boolean {
  return lossType === "alphapo" || (CPO_LOSS_TYPES as readonly string[]).includes(lossType);
}

/**
 * A full {@link CPOConfig}: defaults, then `input`, then TRL's AlphaPO sugar (`"alphapo"` → `"simpo"` with
 * `cpoAlpha` 0); loop fields checked by core, CPO fields here.
 */
export function resolveCPOConfig(input: Partial<CPOConfig> = {}): CPOConfig {
  return resolveConfig<CPOConfig>(CPO_DEFAULTS, input, (config) => {
    if (config.lossType === "alphapo") Object.assign(config, { lossType: "simpo", cpoAlpha: 0 });
    if (isCPOLossType(config.lossType)) validateCPOLossOptions({ ...config, lossType: config.lossType as CPOLossType });
    else checkNumber("beta", config.beta, (v) => v > 0, "a number > 0");
    checkOptionalInt("maxLength", config.maxLength, 1);
    checkOptionalInt("maxCompletionLength", config.maxCompletionLength, 1);
  });
}

/** A fresh {@link CPOConfig} with TRL's defaults. */
export function defaultCPOConfig(): CPOConfig {
  return { ...DEFAULT_TRAINING_ARGS, ...CPO_DEFAULTS };
}
