/**
 * `AutoModelForCausalLM` and `AutoModelForSequenceClassification`: pick the adapter from `config.json`'s
 * `model_type`, as transformers does.
 * @module
 */
import { type FromConfigOptions, type FromPretrainedOptions, PreTrainedModelForCausalLM } from "./causal-lm.js";
import {
  PreTrainedModelForSequenceClassification,
  type SequenceClassificationFromPretrainedOptions,
  type SequenceClassificationOptions,
} from "./sequence-classification.js";

/**
 * Entry point mirroring transformers' `AutoModelForCausalLM`. Every supported family (see
 * `supportedModelTypes()`) loads into a {@link PreTrainedModelForCausalLM}.
 *
 * ```ts
 * const model = await AutoModelForCausalLM.fromPretrained("./stories260K", { backend: "wasm" });
 * const { logits } = model.forward({ inputIds: [[1, 403, 407]] });
 * ```
 */
export const AutoModelForCausalLM = {
  /** Load a HF model directory; see {@link PreTrainedModelForCausalLM.fromPretrained}. */
  fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<PreTrainedModelForCausalLM> {
    return PreTrainedModelForCausalLM.fromPretrained(dir, options);
  },
  /** A randomly initialised model; see {@link PreTrainedModelForCausalLM.fromConfig}. */
  fromConfig(config: Record<string, unknown>, options: FromConfigOptions = {}): PreTrainedModelForCausalLM {
    return PreTrainedModelForCausalLM.fromConfig(config, options);
  },
};

/**
 * Entry point mirroring transformers' `AutoModelForSequenceClassification`: every supported family
 * loads into a {@link PreTrainedModelForSequenceClassification}.
 *
 * ```ts
 * const rm = await AutoModelForSequenceClassification.fromPretrained("./stories260K", { numLabels: 1, seed: 0 });
 * ```
 */
export const AutoModelForSequenceClassification = {
  /** Load a HF directory; see {@link PreTrainedModelForSequenceClassification.fromPretrained}. */
  fromPretrained(
    dir: string,
    options: SequenceClassificationFromPretrainedOptions = {},
  ): Promise<PreTrainedModelForSequenceClassification> {
    return PreTrainedModelForSequenceClassification.fromPretrained(dir, options);
  },
  /** A randomly initialised classifier; see {@link PreTrainedModelForSequenceClassification.fromConfig}. */
  fromConfig(
    config: Record<string, unknown>,
    options: SequenceClassificationOptions = {},
  ): PreTrainedModelForSequenceClassification {
    return PreTrainedModelForSequenceClassification.fromConfig(config, options);
  },
};
