import { ConfigError, DEFAULT_TRAINING_ARGS, resolveConfig, type TrainingArgs } from "@prefkit/core";
import { checkNumber, checkOneOf, checkOptionalInt } from "../common/checks.js";
import type { KTOLossType } from "./loss.js";

/**
 * Configuration of KTO training (unpaired desirable/undesirable feedback): TRL's `KTOConfig` with camelCase
 * names and TRL's defaults, on top of the loop settings of `TrainingArgs`. Defaults come from one table,
 * {@link KTO_DEFAULTS}; build a config with {@link resolveKTOConfig}.
 */
export interface KTOConfig extends TrainingArgs {
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
   * β: strength of the implicit KL constraint to the reference model.
   * @defaultValue 0.1
   */
  beta: number;
  /**
   * `"kto"` (the KTO paper, with the batch KL reference point) or `"apo_zero_unpaired"` (APO-zero, no KL pass),
   * or the name of a registered `"unpaired"` loss.
   * @defaultValue "kto"
   */
  lossType: KTOLossType | (string & {});
  /**
   * Weight of the desirable rows' losses. TRL suggests desirableWeight·n_desirable / (undesirableWeight·n_undesirable) in [1, 4/3].
   * @defaultValue 1
   */
  desirableWeight: number;
  /**
   * Weight of the undesirable rows' losses.
   * @defaultValue 1
   */
  undesirableWeight: number;
  /**
   * Maximum prompt + completion tokens; longer rows are truncated keeping the start. `null`: no limit.
   * @defaultValue 1024
   */
  maxLength: number | null;
  /**
   * Order of the training rows: `"sequential"` (TRL's default, required by `"kto"`: each row's KL completion is
   * taken from its neighbour in a fixed-order batch) or `"random"` (reshuffled every epoch; only for
   * `"apo_zero_unpaired"`).
   * @defaultValue "sequential"
   */
  trainSamplingStrategy: "sequential" | "random";
  /**
   * Switch dropout off in the policy and the reference, so log-probs are deterministic.
   * @defaultValue true
   */
  disableDropout: boolean;
  /**
   * Id written into padding positions (masks never depend on it). `null`: the tokenizer's pad, else eos, else 0.
   * @defaultValue null
   */
  padTokenId: number | null;
}

/** TRL's `KTOConfig` defaults: the KTO fields and the loop fields whose default differs from `TrainingArgs`'. */
export const KTO_DEFAULTS = Object.freeze({
  learningRate: 1e-6,
  loggingSteps: 10,
  beta: 0.1,
  lossType: "kto",
  desirableWeight: 1,
  undesirableWeight: 1,
  maxLength: 1024,
  trainSamplingStrategy: "sequential",
  disableDropout: true,
  padTokenId: null,
} satisfies Omit<KTOConfig, keyof TrainingArgs> & Pick<KTOConfig, "learningRate" | "loggingSteps">);

/** A fresh {@link KTOConfig} with TRL's defaults. */
export function defaultKTOConfig(): KTOConfig {
  return { ...DEFAULT_TRAINING_ARGS, ...KTO_DEFAULTS };
}

/** A full {@link KTOConfig}: defaults, then `input`; loop fields checked by core, KTO fields here. */
export function resolveKTOConfig(input: Partial<KTOConfig> = {}): KTOConfig {
  return resolveConfig<KTOConfig>(KTO_DEFAULTS, input, (config) => {
    checkNumber("beta", config.beta, (v) => v > 0, "a number > 0");
    for (const field of ["desirableWeight", "undesirableWeight"] as const) {
      checkNumber(field, config[field], (v) => v >= 0, "a number >= 0");
    }
    checkOptionalInt("maxLength", config.maxLength, 1);
    checkOneOf("trainSamplingStrategy", config.trainSamplingStrategy, ["sequential", "random"] as const);
    if (config.lossType === "kto" && config.trainSamplingStrategy !== "sequential") {
      throw new ConfigError(
        'loss type "kto" needs "sequential" sampling: each row\'s KL completion comes from its neighbour in a fixed-order batch (TRL)',
        { field: "trainSamplingStrategy" },
      );
    }
    if (config.lossType === "kto" && config.perDeviceTrainBatchSize < 2) {
      throw new ConfigError("must be > 1 for KTO: the KL estimate pairs each prompt with another row's completion", {
        field: "perDeviceTrainBatchSize",
      });
    }
  });
}
