/**
 * Mistral: Llama without biases, plus sliding-window attention on every layer whenever
 * `sliding_window` is set (v0.1 uses 4096; later versions set it to null).
 * @module
 */
import { type ModelAdapter, readDecoderConfig, sanitizeCommon } from "./common.js";

/** Adapter for `model_type: "mistral"`. */
export const mistralAdapter: ModelAdapter = {
  modelType: "mistral",
  decoderConfig(config, file) {
    const window = config["sliding_window"];
    return readDecoderConfig(
      config,
      {
        attentionBias: false,
        attentionOutputBias: false,
        mlpBias: false,
        qkNorm: false,
        slidingWindow: typeof window === "number" ? window : null,
        slidingWindowStartLayer: 0,
      },
      file,
    );
  },
  sanitize: sanitizeCommon,
};
