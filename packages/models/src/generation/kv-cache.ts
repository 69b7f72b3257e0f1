/**
 * The key/value cache of incremental decoding, and the step interface a model exposes for it.
 * @module
 */
import { ConfigError, type IntMatrix, type tf } from "@prefkit/core";
import type { LayerKeyValue } from "../modeling/decoder/attention.js";
import type { DecodingSession } from "./session.js";

/**
 * Per-layer rotated keys and values of every position decoded so far (HF's `past_key_values`),
 * each `[B, numKvHeads, S, headDim]`. Owns its tensors: {@link KVCache.dispose} frees them.
 */
export class KVCache {
  /** One entry per decoder layer. */
  readonly layers: readonly LayerKeyValue[];

  /**
   * Take ownership of per-layer caches.
   * @throws ConfigError when the layers disagree on batch or length.
   */
  constructor(layers: readonly LayerKeyValue[]) {
    const first = layers[0];
    for (const [i, kv] of layers.entries()) {
      if (kv.key.shape[0] !== first!.key.shape[0] || kv.key.shape[2] !== first!.key.shape[2]) {
        throw new ConfigError(`layer ${i} has shape [${kv.key.shape}], layer 0 [${first!.key.shape}]`, {
          field: "pastKeyValues",
        });
      }
    }
    this.layers = layers;
  }

  /** Number of cached positions S (padding included). */
  get length(): number {
    return this.layers[0]?.key.shape[2] ?? 0;
  }

  /** Batch size B. */
  get batchSize(): number {
    return this.layers[0]?.key.shape[0] ?? 0;
  }

  /** Number of tensors held (2 per layer), for memory accounting. */
  get numTensors(): number {
    return this.layers.length * 2;
  }

  /** Free every tensor. Idempotent. */
  dispose(): void {
    for (const kv of this.layers) {
      if (!kv.key.isDisposed) kv.key.dispose();
      if (!kv.value.isDisposed) kv.value.dispose();
    }
  }
}

/** Inputs of one incremental step ({@link IncrementalCausalLM.forwardWithCache}). */
export interface CachedForwardInputs {
  /** New token ids `[B, t]`: the (padded) prompt first, then usually one token per row. */
  inputIds: IntMatrix;
  /** `[B, S + t]` over the cached and new positions (1 real, 0 padding). Omit for no padding. */
  attentionMask?: IntMatrix;
  /** Rotary positions of the new tokens `[B, t]`. */
  positionIds: IntMatrix;
  /** The cache of the S earlier positions; null or omitted on the first step. Not disposed. */
  pastKeyValues?: KVCache | null;
  /** Compute logits for the last new position only (`[B, 1, V]`), as sampling needs. */
  lastPositionOnly?: boolean;
}

/** Output of one incremental step. Both tensors belong to the caller. */
export interface CachedForwardOutput {
  /** float32 logits `[B, t, V]` (or `[B, 1, V]` with `lastPositionOnly`). */
  logits: tf.Tensor3D;
  /** A new cache of S + t positions (the old one is left alone for the caller to dispose). */
  pastKeyValues: KVCache;
}

/**
 * What {@link generate} needs from a model: one incremental step over a {@link KVCache}.
 * `PreTrainedModelForCausalLM` implements it.
 */
export interface IncrementalCausalLM {
  /** Run the new tokens over the cache; see {@link CachedForwardInputs}. */
  forwardWithCache(inputs: CachedForwardInputs): CachedForwardOutput;
  /**
   * A faster session for `batch` rows and up to `capacity` columns (prompt and new tokens), e.g. the
   * native decode step; undefined (or no such method) makes `generate()` run {@link forwardWithCache}.
   */
  startDecoding?(batch: number, capacity: number): DecodingSession | undefined;
  /** `generation_config.json` values used as defaults (eos, pad, max_new_tokens, sampling). */
  readonly generationConfig?: GenerationDefaults | undefined;
}

/** The `generation_config.json` fields {@link generate} reads (HF names). */
export interface GenerationDefaults {
  /** Default stop id(s). */
  eos_token_id?: number | number[] | null;
  /** Default pad id. */
  pad_token_id?: number | null;
  /** Default number of new tokens. */
  max_new_tokens?: number | null;
  /** Default sampling switch. */
  do_sample?: boolean;
  /** Default temperature. */
  temperature?: number;
  /** Default top-k. */
  top_k?: number;
  /** Default top-p. */
  top_p?: number;
}

/** True when `model` has a {@link IncrementalCausalLM.forwardWithCache} step. */
export function hasIncrementalStep(model: unknown): model is IncrementalCausalLM {
  return typeof (model as Partial<IncrementalCausalLM> | null)?.forwardWithCache === "function";
}
