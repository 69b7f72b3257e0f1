/**
 * Grouped-query self-attention with rotary embeddings, an optional per-head q/k RMSNorm
 * (Qwen3) and an additive causal / padding / sliding-window bias.
 * @module
 */
import { tf } from "@prefkit/core";
import type { LinearModule } from "./linear.js";
import type { RMSNorm } from "./rmsnorm.js";
import type { RotaryEmbedding, RotaryTables } from "./rope.js";

/** Added to the scores of masked keys. Large enough that exp() is exactly 0, small enough to stay finite. */
const MASKED = -1e9;

/**
 * The additive attention bias `[B|1, 1, 1, T, T]`: 0 where query i may attend key j (j ≤ i,
 * j within the sliding window, key j not padding) and −1e9 elsewhere. Fully masked rows (a
 * left-padded query) get a uniform softmax instead of NaN; their outputs are meaningless, as
 * in HF.
 * @param attentionMask `[B, T]` 1 for real tokens, 0 for padding, or null for none.
 * @param seqLen T.
 * @param slidingWindow window width w (i − w < j), or null for full causal attention.
 */
export function attentionBias(attentionMask: tf.Tensor2D | null, seqLen: number, slidingWindow: number | null) {
  return tf.tidy(() => {
    const lower = slidingWindow === null ? -1 : Math.max(0, slidingWindow - 1);
    let allowed: tf.Tensor = tf.linalg.bandPart(tf.ones([seqLen, seqLen]), lower, 0);
    allowed = tf.reshape(allowed, [1, 1, 1, seqLen, seqLen]);
    if (attentionMask) {
      const keys = tf.reshape(tf.cast(attentionMask, "float32"), [attentionMask.shape[0], 1, 1, 1, seqLen]);
      allowed = tf.mul(allowed, keys);
    }
    return tf.mul(tf.sub(1, allowed), MASKED) as tf.Tensor5D;
  });
}

/**
 * The additive bias for `queryLen` new tokens attending over a cache of `pastLen` earlier
 * positions plus themselves, `[B|1, 1, 1, queryLen, pastLen + queryLen]`: query i sits at cache
 * index `pastLen + i` and may attend key j when j ≤ pastLen + i, within the sliding window, and
 * not padding. With `pastLen = 0` it equals {@link attentionBias}.
 * @param attentionMask `[B, pastLen + queryLen]` over the whole cache, or null for none.
 */
export function incrementalAttentionBias(
  attentionMask: tf.Tensor2D | null,
  queryLen: number,
  pastLen: number,
  slidingWindow: number | null,
): tf.Tensor5D {
  return tf.tidy(() => {
    const keyLen = pastLen + queryLen;
    const causal = new Float32Array(queryLen * keyLen);
    for (let i = 0; i < queryLen; i++) {
      const position = pastLen + i;
      const first = slidingWindow === null ? 0 : Math.max(0, position - slidingWindow + 1);
      causal.fill(1, i * keyLen + first, i * keyLen + position + 1);
    }
    let allowed: tf.Tensor = tf.tensor(causal, [1, 1, 1, queryLen, keyLen]);
    if (attentionMask) {
      const keys = tf.reshape(tf.cast(attentionMask, "float32"), [attentionMask.shape[0], 1, 1, 1, keyLen]);
      allowed = tf.mul(allowed, keys);
    }
    return tf.mul(tf.sub(1, allowed), MASKED) as tf.Tensor5D;
  });
}

/**
 * One layer's key/value cache: keys after rope and values, `[B, numKvHeads, S, headDim]` each,
 * for the S positions seen so far. (A type alias, not an interface, so that it fits tf.tidy's
 * `TensorContainer`.)
 */
export type LayerKeyValue = {
  /** Rotated keys `[B, kv, S, D]`. */
  key: tf.Tensor4D;
  /** Values `[B, kv, S, D]`. */
  value: tf.Tensor4D;
};

/** The projections and norms of one attention block, in mutable slots so plugins can wrap them. */
export interface AttentionModules {
  /** `self_attn.q_proj`: hidden → numHeads·headDim. */
  qProj: LinearModule;
  /** `self_attn.k_proj`: hidden → numKvHeads·headDim. */
  kProj: LinearModule;
  /** `self_attn.v_proj`: hidden → numKvHeads·headDim. */
  vProj: LinearModule;
  /** `self_attn.o_proj`: numHeads·headDim → hidden. */
  oProj: LinearModule;
  /** `self_attn.q_norm` (Qwen3), or null. */
  qNorm: RMSNorm | null;
  /** `self_attn.k_norm` (Qwen3), or null. */
  kNorm: RMSNorm | null;
}

/**
 * Self-attention of one layer. GQA is computed without materialising `repeat_kv` copies:
 * queries are grouped as `[B, kvHeads, groups·T, D]` so that each key/value head is shared by
 * its `groups` query heads inside one batched matmul (HF's head h uses kv head ⌊h / groups⌋).
 */
export class Attention {
  /** Mutable module slots (see {@link AttentionModules}). */
  readonly modules: AttentionModules;
  /** Number of query heads. */
  readonly numHeads: number;
  /** Number of key/value heads. */
  readonly numKvHeads: number;
  /** Per-head width. */
  readonly headDim: number;
  private readonly rotary: RotaryEmbedding;

  /** Assemble from modules and the shared rotary embedding. */
  constructor(
    modules: AttentionModules,
    shape: { numHeads: number; numKvHeads: number; headDim: number },
    rotary: RotaryEmbedding,
  ) {
    this.modules = modules;
    this.numHeads = shape.numHeads;
    this.numKvHeads = shape.numKvHeads;
    this.headDim = shape.headDim;
    this.rotary = rotary;
  }

  /**
   * Full-sequence attention (training and scoring).
   * @param x normed hidden states `[B, T, hidden]`.
   * @param rope cos/sin tables for the positions.
   * @param bias additive mask from {@link attentionBias}.
   */
  apply(x: tf.Tensor3D, rope: RotaryTables, bias: tf.Tensor5D): tf.Tensor3D {
    return tf.tidy(() => {
      const { query, key, value } = this.project(x, rope);
      return this.attend(query, key, value, bias, x.shape[1]);
    });
  }

  /**
   * Incremental attention for generation: the new tokens' keys/values are appended to `past`
   * and the queries attend over the whole cache. The projections are the same module slots as
   * {@link apply}, so wrapped (e.g. LoRA) projections take part in generation too.
   * @param x normed hidden states of the new tokens `[B, t, hidden]`.
   * @param rope cos/sin tables for the new tokens' positions.
   * @param bias `[B|1, 1, 1, t, P + t]` from {@link incrementalAttentionBias}.
   * @param past this layer's cache (`P` positions), or null for the first step.
   * @returns the output `[B, t, hidden]` and the cache extended to `P + t` positions (new
   *   tensors; `past` is left alone for the caller to dispose).
   */
  applyWithPast(
    x: tf.Tensor3D,
    rope: RotaryTables,
    bias: tf.Tensor5D,
    past: LayerKeyValue | null,
  ): { output: tf.Tensor3D; present: LayerKeyValue } {
    return tf.tidy(() => {
      const projected = this.project(x, rope);
      const key = past ? (tf.concat([past.key, projected.key], 2) as tf.Tensor4D) : projected.key;
      const value = past ? (tf.concat([past.value, projected.value], 2) as tf.Tensor4D) : projected.value;
      const t = x.shape[1];
      // wasm: broadcast multiply + sum beats its per-batch matmul calls for one query; cpu (native
      // BLAS): the batched matmuls win (its Sum kernel is slow).
      const output =
        t === 1 && tf.getBackend() !== "cpu"
          ? this.attendSingleQuery(projected.query, key, value, bias)
          : this.attend(projected.query, key, value, bias, t);
      return { output, present: { key, value } };
    });
  }

  /**
   * q/k/v projections, q/k norms and rope. Returns grouped, pre-scaled queries
   * `[B, kv, g·t, D]` and keys/values `[B, kv, t, D]`.
   */
  private project(x: tf.Tensor3D, rope: RotaryTables): { query: tf.Tensor4D; key: tf.Tensor4D; value: tf.Tensor4D } {
    const [b, t] = x.shape;
    const { numHeads, numKvHeads, headDim } = this;
    const groups = numHeads / numKvHeads;
    const m = this.modules;

    let q = tf.reshape(m.qProj.apply(x), [b, t, numHeads, headDim]) as tf.Tensor4D;
    let k = tf.reshape(m.kProj.apply(x), [b, t, numKvHeads, headDim]) as tf.Tensor4D;
    const v = tf.reshape(m.vProj.apply(x), [b, t, numKvHeads, headDim]);
    if (m.qNorm) q = m.qNorm.apply(q) as tf.Tensor4D;
    if (m.kNorm) k = m.kNorm.apply(k) as tf.Tensor4D;
    q = this.rotary.apply(q, rope);
    k = this.rotary.apply(k, rope);

    // [B, T, kv, g, D] -> [B, kv, g, T, D] -> [B, kv, g·T, D]; scale folded into q.
    const query = tf.reshape(
      tf.transpose(tf.reshape(tf.mul(q, 1 / Math.sqrt(headDim)), [b, t, numKvHeads, groups, headDim]), [0, 2, 3, 1, 4]),
      [b, numKvHeads, groups * t, headDim],
    ) as tf.Tensor4D;
    const key = tf.transpose(k, [0, 2, 1, 3]) as tf.Tensor4D; // [B, kv, T, D]
    const value = tf.transpose(v, [0, 2, 1, 3]) as tf.Tensor4D;
    return { query, key, value };
  }

  /**
   * {@link attend} for one new token per row (a decoding step), as broadcast multiply + sum
   * instead of batched matmuls: with `t = 1` each product is tiny, and batched matmuls cost
   * one kernel call per batch × head on wasm.
   */
  private attendSingleQuery(query: tf.Tensor4D, key: tf.Tensor4D, value: tf.Tensor4D, bias: tf.Tensor5D): tf.Tensor3D {
    const [b, kv, groups, headDim] = query.shape;
    const s = key.shape[2];
    // [B, kv, g, 1, D] · [B, kv, 1, S, D] summed over D -> [B, kv, g, S]
    const scores = tf.sum(
      tf.mul(tf.reshape(query, [b, kv, groups, 1, headDim]), tf.reshape(key, [b, kv, 1, s, headDim])),
      -1,
    );
    const probs = tf.softmax(tf.add(scores, tf.reshape(bias, [bias.shape[0], 1, 1, s])));
    // [B, kv, g, S, 1] · [B, kv, 1, S, D] summed over S -> [B, kv, g, D]
    const context = tf.sum(
      tf.mul(tf.reshape(probs, [b, kv, groups, s, 1]), tf.reshape(value, [b, kv, 1, s, headDim])),
      3,
    );
    return this.modules.oProj.apply(tf.reshape(context, [b, 1, this.numHeads * headDim])) as tf.Tensor3D;
  }

  /** Softmax attention of `t` grouped queries over `S` keys, then `o_proj`. */
  private attend(query: tf.Tensor4D, key: tf.Tensor4D, value: tf.Tensor4D, bias: tf.Tensor5D, t: number): tf.Tensor3D {
    const b = query.shape[0];
    const s = key.shape[2];
    const { numHeads, numKvHeads, headDim } = this;
    const groups = numHeads / numKvHeads;
    const scores = tf.reshape(tf.matMul(query, key, false, true), [b, numKvHeads, groups, t, s]);
    const probs = tf.reshape(tf.softmax(tf.add(scores, bias)), [b, numKvHeads, groups * t, s]);
    const context = tf.reshape(tf.matMul(probs, value), [b, numKvHeads, groups, t, headDim]);
    const merged = tf.reshape(tf.transpose(context, [0, 3, 1, 2, 4]), [b, t, numHeads * headDim]);
    return this.modules.oProj.apply(merged) as tf.Tensor3D;
  }
}
