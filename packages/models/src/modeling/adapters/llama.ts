/**
 * Llama (1/2/3.x) and SmolLM: `attention_bias` (q/k/v/o), `mlp_bias`, RoPE scaling incl.
 * `llama3`, tied embeddings for SmolLM-style checkpoints.
 * @module
 */
import { type ModelAdapter, readDecoderConfig, sanitizeCommon } from "./common.js";

/** Adapter for `model_type: "llama"` (also SmolLM/SmolLM2, which are Llama with tied embeddings). */
export const llamaAdapter: ModelAdapter = {
  modelType: "llama",
  decoderConfig(config, file) {
    const bias = config["attention_bias"] === true;
    return readDecoderConfig(
      config,
      {
        attentionBias: bias,
        attentionOutputBias: bias,
        mlpBias: config["mlp_bias"] === true,
        qkNorm: false,
        slidingWindow: null,
        slidingWindowStartLayer: 0,
      },
      file,
    );
  },
  sanitize: sanitizeCommon,
};
