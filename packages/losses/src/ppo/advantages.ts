import { tf } from "@prefkit/core";
import { asFloatTensor, type TensorInput } from "../dpo/tensor-input.js";

/** Options of {@link gae}. */
export interface GAEOptions {
  /** Discount γ (TRL default 1). */
  gamma?: number;
  /** GAE λ (TRL default 0.95). */
  lam?: number;
}

/** Result of {@link gae}: new [B, T] tensors owned by the caller. */
export interface GAEResult {
  /** Raw (not whitened) advantages A_t. */
  advantages: tf.Tensor2D;
  /** Returns A_t + V_t (with V zeroed where the mask is 0). */
  returns: tf.Tensor2D;
}

/**
 * Generalised advantage estimation as in TRL's PPOv2 trainer: rewards and values are zeroed where
 * `mask` is 0, then the recursion runs backwards over the FULL response length,
 * δ_t = r_t + γ·V_{t+1} − V_t (V_T = 0), A_t = δ_t + γλ·A_{t+1}; returns = A + V.
 * With a right-padded mask, advantages and returns are 0 past each row's end.
 *
 * TRL keeps values (and puts the score) one position past the last response token; pass that wider
 * mask here to reproduce it exactly, and the plain response mask to {@link whiten} and the losses.
 *
 * @param rewards per-token rewards, [B, T]
 * @param values value-head outputs, [B, T]
 * @param mask 1 for valid positions, 0 for padding, [B, T]
 */
export function gae(rewards: TensorInput, values: TensorInput, mask: TensorInput, options: GAEOptions = {}): GAEResult {
  const gamma = options.gamma ?? 1;
  const lam = options.lam ?? 0.95;
  return tf.tidy(() => {
    const m = asFloatTensor(mask);
    const r = tf.mul(asFloatTensor(rewards), m);
    const v = tf.mul(asFloatTensor(values), m);
    const [batch, length] = v.shape as [number, number];
    const column = (x: tf.Tensor, t: number) => tf.reshape(tf.slice(x, [0, t], [batch, 1]), [batch]);
    const reversed: tf.Tensor[] = [];
    let lastGaeLam: tf.Tensor = tf.zeros([batch]);
    let nextValues: tf.Tensor = tf.zeros([batch]);
    for (let t = length - 1; t >= 0; t--) {
      const vt = column(v, t);
      const delta = tf.sub(tf.add(column(r, t), tf.mul(nextValues, gamma)), vt);
      lastGaeLam = tf.add(delta, tf.mul(lastGaeLam, gamma * lam));
      reversed.push(lastGaeLam);
      nextValues = vt;
    }
    const advantages = tf.stack(reversed.reverse(), 1) as tf.Tensor2D;
    return { advantages, returns: tf.add(advantages, v) as tf.Tensor2D };
  });
}

/**
 * Masked mean (TRL's `masked_mean`): Σ(x·mask)/Σmask, or the plain mean without a mask.
 * Returns a new scalar.
 */
export function maskedMean(values: TensorInput, mask?: TensorInput): tf.Scalar {
  return tf.tidy(() => {
    const x = asFloatTensor(values);
    if (mask === undefined) return tf.mean(x) as tf.Scalar;
    const m = asFloatTensor(mask);
    return tf.div(tf.sum(tf.mul(x, m)), tf.sum(m)) as tf.Scalar;
  });
}

/**
 * Masked variance with Bessel's correction (TRL's `masked_var(unbiased=True)`):
 * mean_mask((x − μ)²) · n/(n − 1), n = Σmask. Needs n ≥ 2. Returns a new scalar.
 */
export function maskedVar(values: TensorInput, mask?: TensorInput): tf.Scalar {
  return tf.tidy(() => {
    const x = asFloatTensor(values);
    const m = mask === undefined ? tf.onesLike(x) : asFloatTensor(mask);
    const n = tf.sum(m);
    const centred = tf.sub(x, maskedMean(x, m));
    const variance = maskedMean(tf.square(centred), m);
    return tf.mul(variance, tf.div(n, tf.sub(n, 1))) as tf.Scalar;
  });
}

/**
 * TRL's `masked_whiten`: (x − μ)/√(σ² + 1e-8) with the masked mean μ and the unbiased masked variance σ²;
 * with `shiftMean` false the mean is added back. Every position is transformed (as TRL does), so zero
 * the padded positions afterwards if they must stay 0. Returns a new tensor of the input's shape.
 */
export function whiten(values: TensorInput, mask?: TensorInput, shiftMean = true): tf.Tensor {
  return tf.tidy(() => {
    const x = asFloatTensor(values);
    const mean = maskedMean(x, mask);
    const variance = maskedVar(x, mask);
    const whitened = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-8)));
    return shiftMean ? whitened : tf.add(whitened, mean);
  });
}
