import { ConfigError, DEFAULT_TRAINING_ARGS, resolveTrainingArgs, type TrainingArgs } from "@prefkit/core";

/**
 * Configuration of supervised fine-tuning: TRL's `SFTConfig` in camelCase with TRL's defaults, plus the
 * loop settings of transformers' `TrainingArguments` it extends.
 */
export interface SFTConfig extends TrainingArgs {
  /** Peak learning rate (TRL default 2e-5). */
  learningRate: number;
  /** Log every this many steps (TRL default 10). */
  loggingSteps: number;
  /** Maximum tokens per example; longer ones are truncated keeping the start (TRL default 1024). `null`: no limit. */
  maxLength: number | null;
  /**
   * Train only on completion tokens of prompt-completion data. `null` (TRL's default) means true for
   * prompt-completion data and false otherwise (where the whole text is the completion anyway).
   */
  completionOnlyLoss: boolean | null;
  /** Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos, else 0. */
  padTokenId: number | null;
  /** Also compute the `entropy` metric (mean per-token entropy over the loss tokens). Default true. */
  computeEntropy: boolean;
}

/** A fresh {@link SFTConfig} with TRL's defaults. */
export function defaultSFTConfig(): SFTConfig {
  return {
    ...DEFAULT_TRAINING_ARGS,
    learningRate: 2e-5,
    loggingSteps: 10,
    maxLength: 1024,
    completionOnlyLoss: null,
    padTokenId: null,
    computeEntropy: true,
  };
}

/** Checks an {@link SFTConfig}; throws a {@link ConfigError} naming the field. */
export function validateSFTConfig(config: SFTConfig): void {
  resolveTrainingArgs<TrainingArgs>(config);
  if (config.maxLength !== null && !(Number.isInteger(config.maxLength) && config.maxLength >= 1)) {
    throw new ConfigError(`must be null or an integer >= 1, got ${JSON.stringify(config.maxLength)}`, {
      field: "maxLength",
    });
  }
  if (config.completionOnlyLoss !== null && typeof config.completionOnlyLoss !== "boolean") {
    throw new ConfigError(`must be null, true or false, got ${JSON.stringify(config.completionOnlyLoss)}`, {
      field: "completionOnlyLoss",
    });
  }
}
