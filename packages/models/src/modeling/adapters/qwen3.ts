/**
 * Qwen3: per-head RMSNorm on queries and keys (`q_norm`, `k_norm`, over `head_dim`) before
 * RoPE, explicit `head_dim`, `attention_bias` on q/k/v/o, Qwen-style sliding-window flags.
 * @module
 */
import { type ModelAdapter, qwenSlidingWindow, readDecoderConfig, sanitizeCommon } from "./common.js";

/** Adapter for `model_type: "qwen3"`. */
export const qwen3Adapter: ModelAdapter = {
  modelType: "qwen3",
  decoderConfig(config, file) {
    const bias = config["attention_bias"] === true;
    return readDecoderConfig(
      config,
      { attentionBias: bias, attentionOutputBias: bias, mlpBias: false, qkNorm: true, ...qwenSlidingWindow(config) },
      file,
    );
  },
  sanitize: sanitizeCommon,
};
