import { ConfigError, DEFAULT_TRAINING_ARGS, resolveConfig, type TrainingArgs } from "@prefkit/core";

/**
 * Configuration of supervised fine-tuning: TRL's `SFTConfig` in camelCase with TRL's defaults, on top of the
 * loop settings of transformers' `TrainingArguments` (`TrainingArgs`). Defaults come from one table,
 * {@link SFT_DEFAULTS}; build a config with {@link resolveSFTConfig}.
 */
export interface SFTConfig extends TrainingArgs {
  /**
   * Peak learning rate of AdamW.
   * @defaultValue 2e-5
   */
  learningRate: number;
  /**
   * Log every this many steps.
   * @defaultValue 10
   */
  loggingSteps: number;
  /**
   * The `"completion"` loss: `"nll"` (token-mean cross-entropy, TRL's default) or the name of a registered
   * user loss.
   * @defaultValue "nll"
   */
  lossType: string;
  /**
   * Maximum tokens per example; longer ones are truncated keeping the start. `null`: no limit.
   * @defaultValue 1024
   */
  maxLength: number | null;
  /**
   * Train only on completion tokens of prompt-completion data. `null` means true for prompt-completion
   * data and false otherwise (where the whole text is the completion anyway), as TRL.
   * @defaultValue null
   */
  completionOnlyLoss: boolean | null;
  /**
   * Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos, else 0.
   * @defaultValue null
   */
  padTokenId: number | null;
  /**
   * Also compute the `entropy` metric (mean per-token entropy over the loss tokens).
   * @defaultValue true
   */
  computeEntropy: boolean;
}

/** TRL's `SFTConfig` defaults: the SFT fields and the loop fields whose default differs from `TrainingArgs`'. */
export const SFT_DEFAULTS = Object.freeze({
  learningRate: 2e-5,
  loggingSteps: 10,
  lossType: "nll",
  maxLength: 1024,
  completionOnlyLoss: null,
  padTokenId: null,
  computeEntropy: true,
} satisfies Omit<SFTConfig, keyof TrainingArgs> & Pick<SFTConfig, "learningRate" | "loggingSteps">);

/** A fresh {@link SFTConfig} with TRL's defaults. */
export function defaultSFTConfig(): SFTConfig {
  return { ...DEFAULT_TRAINING_ARGS, ...SFT_DEFAULTS };
}

/** Checks the SFT fields of an {@link SFTConfig}; throws a {@link ConfigError} naming the field. */
export function validateSFTConfig(config: SFTConfig): void {
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

/** A full {@link SFTConfig}: defaults, then `input`; loop fields checked by core, SFT fields by {@link validateSFTConfig}. */
export function resolveSFTConfig(input: Partial<SFTConfig> = {}): SFTConfig {
  return resolveConfig<SFTConfig>(SFT_DEFAULTS, input, validateSFTConfig);
}
