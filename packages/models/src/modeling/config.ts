/**
 * The typed decoder configuration. Architecture differences between Llama, Qwen2, Qwen3,
 * Mistral and SmolLM are data: an adapter reads an HF `config.json` and fills these flags,
 * and the one decoder in `./decoder` reads nothing else.
 * @module
 */

/** RoPE frequency scaling, as in transformers' `ROPE_INIT_FUNCTIONS`. */
export type DecoderRopeScaling =
  | {
      /** Plain RoPE. */
      type: "default";
    }
  | {
      /** Position interpolation: every inverse frequency divided by `factor`. */
      type: "linear";
      /** Divisor of every inverse frequency. */
      factor: number;
    }
  | {
      /** Llama 3.x scaling (`_compute_llama3_parameters`). */
      type: "llama3";
      /** Divisor of the low frequencies. */
      factor: number;
      /** Wavelengths above `originalMaxPositionEmbeddings / lowFreqFactor` are divided by `factor`. */
      lowFreqFactor: number;
      /** Wavelengths below `originalMaxPositionEmbeddings / highFreqFactor` are kept. */
      highFreqFactor: number;
      /** Context length of pretraining. */
      originalMaxPositionEmbeddings: number;
    };

/**
 * Everything the decoder needs to know, as flags. Produced by a `ModelAdapter` from
 * `config.json`; never read from `config.json` directly by the decoder.
 */
export interface DecoderConfig {
  /** Vocabulary size (rows of `model.embed_tokens.weight`). */
  vocabSize: number;
  /** Residual-stream width. */
  hiddenSize: number;
  /** Feed-forward width of the SwiGLU MLP. */
  intermediateSize: number;
  /** Number of decoder layers. */
  numLayers: number;
  /** Number of query heads. */
  numHeads: number;
  /** Number of key/value heads; `numHeads` must be a multiple of it. */
  numKvHeads: number;
  /** Per-head width (even, for RoPE). */
  headDim: number;
  /** RMSNorm epsilon (every norm, including Qwen3's q/k norms). */
  rmsNormEps: number;
  /** RoPE base θ. */
  ropeTheta: number;
  /** RoPE frequency scaling. */
  ropeScaling: DecoderRopeScaling;
  /** Bias on q_proj, k_proj and v_proj (Qwen2; Llama's `attention_bias`). */
  attentionBias: boolean;
  /** Bias on o_proj (Llama/Qwen3 `attention_bias`; false for Qwen2). */
  attentionOutputBias: boolean;
  /** Bias on gate/up/down projections (Llama `mlp_bias`). */
  mlpBias: boolean;
  /** Per-head RMSNorm on queries and keys before RoPE (Qwen3 `q_norm`/`k_norm`). */
  qkNorm: boolean;
  /**
   * Sliding-window attention width (a query at i sees keys j with i − w < j ≤ i), or null for
   * full causal attention. Adapters set it only when the family enables it (Mistral when
   * `sliding_window` is set; Qwen only with `use_sliding_window: true`).
   */
  slidingWindow: number | null;
  /** First layer index that uses the sliding window (Qwen's `max_window_layers`; 0 for Mistral). */
  slidingWindowStartLayer: number;
  /** `lm_head` reuses `model.embed_tokens.weight`. */
  tieWordEmbeddings: boolean;
  /** Std of the normal initialiser (`initializer_range`). */
  initializerRange: number;
  /** Padding token id, whose embedding row HF zeroes at initialisation; null if none. */
  padTokenId: number | null;
}
