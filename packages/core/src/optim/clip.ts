import { cpuFloat32Values } from "../engine/kernels/cpu-data.js";
import { activeNativeAddon } from "../engine/kernels/native-blas.js";
import { tf } from "../engine/tf.js";

/** Options of {@link clipByGlobalNorm}. */
export interface ClipOptions {
  /**
   * On the native path, scale each gradient whose data no other tensor shares in place (same float32
   * products as `tf.mul`) instead of allocating a scaled copy; the returned tensors share that data.
   * For callers that own `grads` and drop them afterwards (the trainer). Default false.
   */
  inPlace?: boolean;
}

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
 *
 * With the `native-blas` plugin active on `cpu` and float32 gradients, the norm is summed
 * natively over the backend's arrays (in double, no temporaries), and gradients that need no
 * scaling are returned as `tf.clone`s (which share data on cpu) instead of being multiplied by 1.
 */
export function clipByGlobalNorm(
  grads: tf.NamedTensorMap,
  maxNorm: number,
  options: ClipOptions = {},
): ClippedGradients {
  const nativeNorm = nativeGlobalNorm(grads);
  if (nativeNorm !== undefined) return clipNative(grads, maxNorm, nativeNorm, options.inPlace === true);
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

/** The tfjs path's arithmetic on the natively summed norm (coef in float32, as tfjs computes it). */
function clipNative(grads: tf.NamedTensorMap, maxNorm: number, normValue: number, inPlace: boolean): ClippedGradients {
  const norm = tf.scalar(normValue);
  if (!(maxNorm > 0)) return { grads: { ...grads }, norm };
  const f32norm = Math.fround(normValue);
  const coef = Math.min(Math.fround(Math.fround(maxNorm) / Math.fround(f32norm + Math.fround(1e-6))), 1);
  const out: tf.NamedTensorMap = {};
  if (coef >= 1) {
    for (const [k, g] of Object.entries(grads)) out[k] = tf.clone(g);
  } else {
    const scale = tf.scalar(coef);
    for (const [k, g] of Object.entries(grads)) {
      const values = inPlace ? cpuFloat32Values(g, true) : undefined;
      if (values !== undefined) {
        // A new page costs ~4 ms per MB here: scaling a 135M-parameter gradient in place saves ~2 s.
        for (let i = 0; i < values.length; i++) values[i] = values[i]! * coef;
        out[k] = tf.clone(g);
      } else {
        out[k] = tf.mul(g, scale);
      }
    }
    scale.dispose();
  }
  return { grads: out, norm };
}

/**
 * ‖g‖ over all gradients through the native addon's `sumSquares`, or undefined when the addon is
 * not active or a gradient is not a float32 tensor with its data on the cpu backend.
 */
function nativeGlobalNorm(grads: tf.NamedTensorMap): number | undefined {
  const sumSquares = activeNativeAddon()?.sumSquares;
  if (sumSquares === undefined) return undefined;
  const arrays: Float32Array[] = [];
  for (const g of Object.values(grads)) {
    const values = cpuFloat32Values(g);
    if (values === undefined) return undefined;
    arrays.push(values);
  }
  let total = 0;
  for (const a of arrays) total += sumSquares(a);
  return Math.sqrt(total);
}
