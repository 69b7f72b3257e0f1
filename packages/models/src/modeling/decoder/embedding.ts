/**
 * The token embedding `model.embed_tokens`: a `[vocab, hidden]` table whose rows are looked up by token
 * id, over a float32 variable or a frozen 16-bit weight.
 * @module
 */
import { tf } from "@prefkit/core";
import { type DecoderWeight, dense16Description, HalfPrecisionWeight } from "./half-precision.js";
import type { Dense16LinearDescription, DenseLinearDescription } from "./linear.js";

/** HF module name of the embedding. */
export const EMBEDDING_MODULE = "model.embed_tokens";

/**
 * `model.embed_tokens`. Over a float32 variable the lookup is `tf.gather` (differentiable: the
 * embedding trains). Over a 16-bit weight it copies the requested rows out of the bit patterns and
 * upcasts them (exact) into a new float32 tensor, so no float32 copy of the table ever exists; that
 * lookup reads the ids with a data sync and has no gradient (the weight is frozen).
 */
export class TokenEmbedding {
  /** The table `[vocab, hidden]`. */
  readonly weight: DecoderWeight;

  /** @param weight the table `[vocab, hidden]`. */
  constructor(weight: DecoderWeight) {
    this.weight = weight;
  }

  /** Rows of `ids` (int32, any shape flattened): `[ids.size, hidden]`. */
  lookup(ids: tf.Tensor): tf.Tensor2D {
    const flat = tf.reshape(ids, [-1]);
    if (!(this.weight instanceof HalfPrecisionWeight)) return tf.gather(this.weight, flat) as tf.Tensor2D;
    const values = this.weight.rows(flat.dataSync());
    return tf.tensor2d(values, [flat.size, this.weight.shape[1]!], "float32");
  }

  /** The table as a linear description (`dense` or `dense16`, no bias), for fused implementations. */
  describe(): DenseLinearDescription | Dense16LinearDescription {
    const w = this.weight;
    if (!(w instanceof HalfPrecisionWeight)) return { kind: "dense", weight: w, bias: null };
    // The rows are gathered from the bits: never dropped for a pack.
    return dense16Description(w, null, false);
  }

  /** `model.embed_tokens.weight` when it is a variable; nothing for 16-bit storage. */
  parameters(): Map<string, tf.Variable> {
    return this.weight instanceof HalfPrecisionWeight
      ? new Map()
      : new Map([[`${EMBEDDING_MODULE}.weight`, this.weight]]);
  }
}
