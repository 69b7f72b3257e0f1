/**
 * Qwen2 / Qwen2.5: bias on q/k/v (always, not configurable) but not on o_proj; `sliding_window`
 * is present in every config but honoured only with `use_sliding_window: true`, from layer
 * `max_window_layers` on.
 * @module
 */
import { type ModelAdapter, qwenSlidingWindow, readDecoderConfig, sanitizeCommon } from "./common.js";

/** Adapter for `model_type: "qwen2"`. */
export const qwen2Adapter: ModelAdapter = {
  modelType: "qwen2",
  decoderConfig(config, file) {
    return readDecoderConfig(
      config,
      { attentionBias: true, attentionOutputBias: false, mlpBias: false, qkNorm: false, ...qwenSlidingWindow(config) },
      file,
    );
  },
  sanitize: sanitizeCommon,
};
