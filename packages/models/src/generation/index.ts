/**
 * Generation: the KV cache, token sampling, `generate()` and the `generateText()` pipeline.
 * @module
 */
export { CachedForwardSession } from "./cached-session.js";
export { generate, generateStream, type ResolvedGenerateOptions, resolveGenerateOptions } from "./generate.js";
export {
  type CachedForwardInputs,
  type CachedForwardOutput,
  type GenerationDefaults,
  hasIncrementalStep,
  type IncrementalCausalLM,
  KVCache,
} from "./kv-cache.js";
export {
  type GeneratedText,
  type GenerateTextOptions,
  generateText,
  type TextPrompt,
  type TextTokenizer,
} from "./pipeline.js";
export type { DecodingSession } from "./session.js";
export {
  argmax,
  type SamplingOptions,
  sampleFromDistribution,
  sampleToken,
  samplingDistribution,
  tokenLogProb,
  validateSamplingOptions,
} from "./sampling.js";
