/**
 * One pre-norm transformer block of the decoder: `h + attn(norm(h))`, then `h + mlp(norm(h))`.
 * @module
 */
import { tf } from "@prefkit/core";
import type { Attention, LayerKeyValue } from "./attention.js";
import type { MLP } from "./mlp.js";
import type { RMSNorm } from "./rmsnorm.js";
import type { RotaryTables } from "./rope.js";

/** One pre-norm transformer block. */
export class DecoderLayer {
  /** `input_layernorm`. */
  readonly inputNorm: RMSNorm;
  /** `self_attn`. */
  readonly selfAttn: Attention;
  /** `post_attention_layernorm`. */
  readonly postAttentionNorm: RMSNorm;
  /** `mlp`. */
  readonly mlp: MLP;
  /** Sliding window of this layer, or null for full causal attention. */
  readonly slidingWindow: number | null;

  /** Assemble a block from its parts. */
  constructor(parts: {
    inputNorm: RMSNorm;
    selfAttn: Attention;
    postAttentionNorm: RMSNorm;
    mlp: MLP;
    slidingWindow: number | null;
  }) {
    this.inputNorm = parts.inputNorm;
    this.selfAttn = parts.selfAttn;
    this.postAttentionNorm = parts.postAttentionNorm;
    this.mlp = parts.mlp;
    this.slidingWindow = parts.slidingWindow;
  }

  /** `h + attn(norm(h))`, then `h + mlp(norm(h))`. */
  apply(h: tf.Tensor3D, rope: RotaryTables, bias: tf.Tensor5D): tf.Tensor3D {
    return tf.tidy(() => {
      const attended = tf.add(h, this.selfAttn.apply(this.inputNorm.apply(h) as tf.Tensor3D, rope, bias));
      return tf.add(attended, this.mlp.apply(this.postAttentionNorm.apply(attended) as tf.Tensor3D)) as tf.Tensor3D;
    });
  }

  /** {@link apply} for new tokens over this layer's cache; returns the extended cache too. */
  applyWithPast(
    h: tf.Tensor3D,
    rope: RotaryTables,
    bias: tf.Tensor5D,
    past: LayerKeyValue | null,
  ): { hidden: tf.Tensor3D; present: LayerKeyValue } {
    return tf.tidy(() => {
      const { output, present } = this.selfAttn.applyWithPast(this.inputNorm.apply(h) as tf.Tensor3D, rope, bias, past);
      const attended = tf.add(h, output);
      const hidden = tf.add(
        attended,
        this.mlp.apply(this.postAttentionNorm.apply(attended) as tf.Tensor3D),
      ) as tf.Tensor3D;
      return { hidden, present };
    });
  }
}
