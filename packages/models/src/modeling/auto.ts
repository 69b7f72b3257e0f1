/**
 * `AutoModelForCausalLM`: pick the adapter from `config.json`'s `model_type`, as transformers does.
 * @module
 */
import { type FromConfigOptions, type FromPretrainedOptions, PreTrainedModelForCausalLM } from "./causal-lm.js";

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
