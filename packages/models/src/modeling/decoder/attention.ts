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
   * @param x normed hidden states `[B, T, hidden]`.
   * @param rope cos/sin tables for the positions.
   * @param bias additive mask from {@link attentionBias}.
   */
  apply(x: tf.Tensor3D, rope: RotaryTables, bias: tf.Tensor5D): tf.Tensor3D {
    return tf.tidy(() => {
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
      const qGrouped = tf.reshape(
        tf.transpose(
          tf.reshape(tf.mul(q, 1 / Math.sqrt(headDim)), [b, t, numKvHeads, groups, headDim]),
          [0, 2, 3, 1, 4],
        ),
        [b, numKvHeads, groups * t, headDim],
      );
      const kHeads = tf.transpose(k, [0, 2, 1, 3]); // [B, kv, T, D]
      const vHeads = tf.transpose(v, [0, 2, 1, 3]);

      const scores = tf.reshape(tf.matMul(qGrouped, kHeads, false, true), [b, numKvHeads, groups, t, t]);
      const probs = tf.reshape(tf.softmax(tf.add(scores, bias)), [b, numKvHeads, groups * t, t]);
      const context = tf.reshape(tf.matMul(probs, vHeads), [b, numKvHeads, groups, t, headDim]);
      const merged = tf.reshape(tf.transpose(context, [0, 3, 1, 2, 4]), [b, t, numHeads * headDim]);
      return m.oProj.apply(merged) as tf.Tensor3D;
    });
  }
}
