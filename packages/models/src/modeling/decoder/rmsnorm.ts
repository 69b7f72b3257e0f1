/**
 * RMSNorm as in `LlamaRMSNorm`: `w · x / sqrt(mean(x²) + eps)` over the last axis, in float32.
 * @module
 */
import { tf } from "@prefkit/core";

/** Root-mean-square layer norm with a learned scale (no bias, no mean subtraction). */
export class RMSNorm {
  /** HF module name, e.g. `model.layers.0.input_layernorm` or `...self_attn.q_norm`. */
  readonly name: string;
  /** Scale `[dim]`. */
  readonly weight: tf.Variable;
  /** Epsilon added to the mean square. */
  readonly eps: number;

  /** Wrap an existing scale variable. */
  constructor(name: string, weight: tf.Variable, eps: number) {
    this.name = name;
    this.weight = weight;
    this.eps = eps;
  }

  /** Normalise over the last axis. */
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const meanSquare = tf.mean(tf.square(x), -1, true);
      return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, this.eps))), this.weight);
    });
  }

  /** `${name}.weight`. */
  parameters(): Map<string, tf.Variable> {
    return new Map([[`${this.name}.weight`, this.weight]]);
  }
}
