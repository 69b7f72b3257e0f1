import { DEFAULT_TRAINING_ARGS, resolveConfig, type TrainingArgs } from "@prefkit/core";
import { checkNumber, checkOptionalInt } from "../common/checks.js";

/**
 * Configuration of ORPO training (odds-ratio preference optimisation, Hong et al. 2024: SFT plus an odds-ratio
 * term, no reference model): TRL's `ORPOConfig` with camelCase names and TRL's defaults, on top of
 * `TrainingArgs`. Defaults come from one table, {@link ORPO_DEFAULTS}; build a config with {@link resolveORPOConfig}.
 */
export interface ORPOConfig extends TrainingArgs {
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
   * β: the weight λ of the odds-ratio term (the ORPO paper); the logged rewards are β·(mean log-prob).
   * @defaultValue 0.1
   */
  beta: number;
  /**
   * The `"preference"` loss: `"orpo"`, or the name of a registered reference-free user loss.
   * @defaultValue "orpo"
   */
  lossType: string;
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

/** TRL's `ORPOConfig` defaults: the ORPO fields and the loop fields whose default differs from `TrainingArgs`'. */
export const ORPO_DEFAULTS = Object.freeze({
  learningRate: 1e-6,
  loggingSteps: 10,
  beta: 0.1,
  lossType: "orpo",
  maxLength: 1024,
  maxCompletionLength: null,
  disableDropout: true,
  padTokenId: null,
} satisfies Omit<ORPOConfig, keyof TrainingArgs> & Pick<ORPOConfig, "learningRate" | "loggingSteps">);

/** A full {@link ORPOConfig}: defaults, then `input`; loop fields checked by core, ORPO fields here. */
export function resolveORPOConfig(input: Partial<ORPOConfig> = {}): ORPOConfig {
  return resolveConfig<ORPOConfig>(ORPO_DEFAULTS, input, (config) => {
    checkNumber("beta", config.beta, (v) => v > 0, "a number > 0");
    checkOptionalInt("maxLength", config.maxLength, 1);
    checkOptionalInt("maxCompletionLength", config.maxCompletionLength, 1);
  });
}

/** A fresh {@link ORPOConfig} with TRL's defaults. */
export function defaultORPOConfig(): ORPOConfig {
  return { ...DEFAULT_TRAINING_ARGS, ...ORPO_DEFAULTS };
}
