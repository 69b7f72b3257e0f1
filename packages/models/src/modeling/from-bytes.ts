import { CONFIG_NAME, validateModelConfig } from "../io/config/index.js";
import { parseSafetensors, SAFETENSORS_WEIGHTS_NAME } from "../io/index.js";
import { adapterFor } from "./adapters/index.js";
import { PreTrainedModelForCausalLM } from "./causal-lm.js";

/** Options of {@link causalLMFromBytes}. */
export interface FromBytesOptions {
  /** Names used in error messages (default `config.json` and `model.safetensors`). */
  configName?: string;
  /** Name of the weights in error messages. */
  weightsName?: string;
}

/**
 * A causal LM from an in-memory `config.json` object and `model.safetensors` bytes: for browsers
 * (files fetched over HTTP) and other hosts without a file system. Validation is the same as
 * {@link PreTrainedModelForCausalLM.fromPretrained}'s.
 * @throws ConfigError for an unsupported `model_type`, a bad config field or mismatched weights.
 * @throws CheckpointError for malformed safetensors bytes.
 */
export function causalLMFromBytes(
  configJson: unknown,
  safetensors: Uint8Array,
  options: FromBytesOptions = {},
): PreTrainedModelForCausalLM {
  const configName = options.configName ?? CONFIG_NAME;
  const weightsName = options.weightsName ?? SAFETENSORS_WEIGHTS_NAME;
  const config = validateModelConfig(configJson, configName);
  const adapter = adapterFor(config, configName);
  const decoderConfig = adapter.decoderConfig(config, configName);
  const checkpoint = parseSafetensors(safetensors, weightsName);
  const weights = adapter.sanitize(checkpoint.tensors, decoderConfig);
  return new PreTrainedModelForCausalLM(config, decoderConfig, weights, { file: weightsName });
}
