import { tf } from "../engine/tf.js";

/** Result of {@link clipByGlobalNorm}. */
export interface ClippedGradients {
  /** The (possibly scaled) gradients, same keys as the input. */
  grads: tf.NamedTensorMap;
  /** Global L2 norm of the gradients BEFORE clipping (what torch returns and HF logs as `grad_norm`). */
  norm: tf.Scalar;
}

/**
 * `torch.nn.utils.clip_grad_norm_`: scale every gradient by min(1, maxNorm / (‖g‖ + 1e-6)),
 * where ‖g‖ is the L2 norm of all gradients concatenated. `maxNorm <= 0` only measures.
 * Returns new tensors (call inside `tf.tidy`).
 */
export function clipByGlobalNorm(grads: tf.NamedTensorMap, maxNorm: number): ClippedGradients {
  const list = Object.values(grads);
  const norm = (
    list.length === 0 ? tf.scalar(0) : tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g)))))
  ) as tf.Scalar;
  if (!(maxNorm > 0)) return { grads: { ...grads }, norm };
  const coef = tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1);
  const out: tf.NamedTensorMap = {};
  for (const [k, g] of Object.entries(grads)) out[k] = tf.mul(g, coef);
  return { grads: out, norm };
}
