/**
 * Modeling: one decoder, per-family adapters, `AutoModelForCausalLM`, and log-probabilities.
 * @module
 */
export * from "./adapters/index.js";
export * from "./auto.js";
export * from "./causal-lm.js";
export * from "./config.js";
export { Attention, type AttentionModules, attentionBias } from "./decoder/attention.js";
export type {
  DecoderAccelerator,
  DecoderComputeDtype,
  DecoderModules,
  TokenLogProbs,
} from "./decoder/accelerator.js";
export { Decoder, type DecoderForwardOptions, type DecoderHiddenOutput } from "./decoder/decoder.js";
export { EMBEDDING_MODULE, TokenEmbedding } from "./decoder/embedding.js";
export {
  type DecoderWeight,
  type HalfPrecisionDtype,
  HalfPrecisionLinear,
  HalfPrecisionWeight,
  type PackedBitsStore,
  roundToHalfPrecision,
} from "./decoder/half-precision.js";
export { DecoderLayer } from "./decoder/layer.js";
export {
  type Dense16LinearDescription,
  type DenseLinearDescription,
  Linear,
  type LinearDescription,
  type LinearModule,
  type LoraLinearDescription,
} from "./decoder/linear.js";
export { MLP, type MLPModules } from "./decoder/mlp.js";
export { RMSNorm } from "./decoder/rmsnorm.js";
export { computeInverseFrequencies, RotaryEmbedding, type RotaryTables } from "./decoder/rope.js";
export { expectedWeightShapes, initialWeights, validateWeights } from "./decoder/weights.js";
export {
  type SequenceLogProbs,
  type SequenceLogProbsOptions,
  selectiveLogProbs,
  sequenceLogProbs,
} from "@prefkit/core";
export * from "./sequence-classification.js";
export {
  type ModelDtype,
  ModelWeights,
  type SaveDtype,
  storedInHalfPrecision,
  TORCH_DTYPE_OF,
  type WeightSource,
} from "./model-weights.js";
export { type LoadDtype, resolveLoadDtype } from "./pretrained-directory.js";
export { causalLMFromBytes, type FromBytesOptions } from "./from-bytes.js";
export { incrementalAttentionBias, type LayerKeyValue } from "./decoder/attention.js";
export type { DecoderStepInputs, DecoderStepOutput } from "./decoder/decoder.js";
export { nativeDecoderAccelerator } from "./native/accelerator.js";
export { type NativeDecoderStatus, nativeDecoderProfile, nativeDecoderStatus } from "./native/addon.js";
