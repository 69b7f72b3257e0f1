/**
 * What every adapter shares: the {@link ModelAdapter} contract, reading the fields all
 * decoder families have in common, RoPE-scaling parsing and the usual checkpoint quirks.
 * @module
 */
import { ConfigError } from "@prefkit/core";
import type { PretrainedConfig, TensorRecord } from "../../io/index.js";
import type { DecoderConfig, DecoderRopeScaling } from "../config.js";

/**
 * Turns one family's `config.json` into {@link DecoderConfig} flags and fixes its checkpoint
 * quirks. Register a new family with `registerAdapter`.
 */
export interface ModelAdapter {
  /** The `model_type` this adapter handles (`llama`, `qwen2`, ...). */
  readonly modelType: string;
  /**
   * Flags for the decoder.
   * @param file path of the config, for error messages.
   * @throws ConfigError naming the field when a value is missing or unsupported.
   */
  decoderConfig(config: PretrainedConfig, file?: string): DecoderConfig;
  /**
   * Drop or rename tensors the decoder does not use (e.g. `lm_head.weight` in a tied
   * checkpoint, stale `rotary_emb.inv_freq` buffers). Returns a new map.
   */
  sanitize(weights: ReadonlyMap<string, TensorRecord>, config: DecoderConfig): Map<string, TensorRecord>;
}

/** The family-specific flags an adapter supplies on top of the shared fields. */
export type FamilyFlags = Pick<
  DecoderConfig,
  "attentionBias" | "attentionOutputBias" | "mlpBias" | "qkNorm" | "slidingWindow" | "slidingWindowStartLayer"
>;

function positiveInt(config: PretrainedConfig, field: string, file?: string, fallback?: number): number {
  const raw = config[field] ?? fallback;
  if (typeof raw !== "number" || !Number.isInteger(raw) || raw <= 0) {
    throw new ConfigError(`expected a positive integer, got ${JSON.stringify(raw)}`, { file, field });
  }
  return raw;
}

function positiveNumber(
  config: Record<string, unknown>,
  field: string,
  prefix: string,
  file?: string,
  fallback?: number,
) {
  const raw = config[field] ?? fallback;
  if (typeof raw !== "number" || !(raw > 0)) {
    throw new ConfigError(`expected a positive number, got ${JSON.stringify(raw)}`, { file, field: prefix + field });
  }
  return raw;
}

/** Parse `rope_scaling` (null, `default`, `linear` or `llama3`). */
export function parseRopeScaling(raw: PretrainedConfig["rope_scaling"], file?: string): DecoderRopeScaling {
  if (raw === null || raw === undefined) return { type: "default" };
  const kind = raw["rope_type"] ?? raw["type"] ?? "default";
  const p = "rope_scaling.";
  switch (kind) {
    case "default":
      return { type: "default" };
    case "linear":
      return { type: "linear", factor: positiveNumber(raw, "factor", p, file) };
    case "llama3":
      return {
        type: "llama3",
        factor: positiveNumber(raw, "factor", p, file),
        lowFreqFactor: positiveNumber(raw, "low_freq_factor", p, file),
        highFreqFactor: positiveNumber(raw, "high_freq_factor", p, file),
        originalMaxPositionEmbeddings: positiveNumber(raw, "original_max_position_embeddings", p, file),
      };
    default:
      throw new ConfigError(`unsupported RoPE scaling ${JSON.stringify(kind)}; supported: default, linear, llama3`, {
        file,
        field: raw["rope_type"] !== undefined ? "rope_scaling.rope_type" : "rope_scaling.type",
      });
  }
}

/**
 * Read the fields every family shares (sizes, heads, eps, θ, RoPE scaling, tying) with
 * transformers' defaults, and merge in the family flags.
 */
export function readDecoderConfig(config: PretrainedConfig, family: FamilyFlags, file?: string): DecoderConfig {
  const act = config.hidden_act ?? "silu";
  if (act !== "silu")
    throw new ConfigError(`unsupported activation "${act}"; only silu (SwiGLU)`, { file, field: "hidden_act" });
  const numHeads = positiveInt(config, "num_attention_heads", file);
  const hiddenSize = positiveInt(config, "hidden_size", file);
  const numKvHeads = positiveInt(config, "num_key_value_heads", file, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(`num_attention_heads (${numHeads}) is not a multiple of it (${numKvHeads})`, {
      file,
      field: "num_key_value_heads",
    });
  }
  const headDim = config.head_dim ?? hiddenSize / numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ConfigError(`head dimension ${headDim} must be an even integer`, { file, field: "head_dim" });
  }
  const window = family.slidingWindow;
  if (window !== null && (!Number.isInteger(window) || window <= 0)) {
    throw new ConfigError(`expected a positive integer, got ${window}`, { file, field: "sliding_window" });
  }
  const pad = config["pad_token_id"];
  return {
    vocabSize: positiveInt(config, "vocab_size", file),
    hiddenSize,
    intermediateSize: positiveInt(config, "intermediate_size", file),
    numLayers: positiveInt(config, "num_hidden_layers", file),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: positiveNumber(config, "rms_norm_eps", "", file, 1e-6),
    ropeTheta: positiveNumber(config, "rope_theta", "", file, 10000),
    ropeScaling: parseRopeScaling(config.rope_scaling, file),
    tieWordEmbeddings: config.tie_word_embeddings ?? false,
    initializerRange: positiveNumber(config, "initializer_range", "", file, 0.02),
    padTokenId: typeof pad === "number" && pad >= 0 ? pad : null,
    ...family,
  };
}

/**
 * The quirks every family shares: drop `lm_head.weight` when embeddings are tied (HF ignores it
 * too) and drop `rotary_emb.inv_freq` buffers that old checkpoints saved.
 */
export function sanitizeCommon(
  weights: ReadonlyMap<string, TensorRecord>,
  config: DecoderConfig,
): Map<string, TensorRecord> {
  const out = new Map<string, TensorRecord>();
  for (const [name, t] of weights) {
    if (name.endsWith(".rotary_emb.inv_freq")) continue;
    if (config.tieWordEmbeddings && name === "lm_head.weight") continue;
    out.set(name, t);
  }
  return out;
}

/** The sliding-window flags of Qwen configs: honoured only with `use_sliding_window: true`. */
export function qwenSlidingWindow(
  config: PretrainedConfig,
): Pick<FamilyFlags, "slidingWindow" | "slidingWindowStartLayer"> {
  const use = config["use_sliding_window"] === true && typeof config["sliding_window"] === "number";
  return {
    slidingWindow: use ? (config["sliding_window"] as number) : null,
    slidingWindowStartLayer: use ? Number(config["max_window_layers"] ?? 0) : 0,
  };
}
