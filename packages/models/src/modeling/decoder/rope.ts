/**
 * Rotary position embeddings with HF's `rotate_half` convention (first and second halves of each
 * head are the pair, not interleaved lanes), including transformers' RoPE scaling variants.
 * @module
 */
import { tf } from "@prefkit/core";
import type { DecoderRopeScaling } from "../config.js";

const f32 = Math.fround;

/**
 * Inverse frequencies `[headDim / 2]`, computed as transformers does in float32
 * (`1 / base ** (arange(0, dim, 2) / dim)`), then rescaled per {@link DecoderRopeScaling}.
 * The `llama3` branch follows `_compute_llama3_parameters` step by step.
 */
export function computeInverseFrequencies(headDim: number, theta: number, scaling: DecoderRopeScaling): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f32(1 / f32(theta ** f32((2 * i) / headDim)));
  if (scaling.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = f32(inv[i]! / scaling.factor);
  } else if (scaling.type === "llama3") {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldContext } = scaling;
    const lowFreqWavelen = oldContext / lowFreqFactor;
    const highFreqWavelen = oldContext / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const freq = inv[i]!;
      // torch evaluates `scalar / tensor` as `reciprocal(tensor) * scalar` in float32.
      const wavelen = f32(f32(1 / freq) * f32(2 * Math.PI));
      // Low frequencies (long wavelengths) are divided by `factor`.
      let scaled = wavelen > lowFreqWavelen ? f32(freq / factor) : freq;
      const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
      if (isMedium) {
        // Medium frequencies interpolate smoothly between the two regimes.
        const smooth = f32(f32(f32(f32(1 / wavelen) * oldContext) - lowFreqFactor) / (highFreqFactor - lowFreqFactor));
        scaled = f32(f32(f32(f32(1 - smooth) * scaled) / factor) + f32(smooth * scaled));
      }
      inv[i] = scaled;
    }
  }
  return inv;
}

/** cos/sin tables for a batch of positions, shaped `[B, T, 1, headDim]` to broadcast over heads. */
export interface RotaryTables {
  /** cos(position · θ_i), duplicated over both halves. */
  cos: tf.Tensor4D;
  /** sin(position · θ_i), duplicated over both halves. */
  sin: tf.Tensor4D;
}

/**
 * Owns the inverse frequencies and the constant `rotate_half` matrix. `rotate_half(x)` is
 * computed as `x · R` with a signed permutation matrix R, one small unbatched matmul instead of
 * split + neg + concat, which keeps the gradient a single matmul as well.
 */
export class RotaryEmbedding {
  /** Inverse frequencies `[headDim]` (the `[headDim/2]` table repeated twice, as HF's `cat(freqs, freqs)`). */
  readonly inverseFrequencies: tf.Tensor1D;
  /** The signed permutation R `[headDim, headDim]` with `x · R = rotate_half(x)`. */
  readonly rotateHalfMatrix: tf.Tensor2D;
  /** Per-head width. */
  readonly headDim: number;

  /** Build tables for one head width, base and scaling. */
  constructor(headDim: number, theta: number, scaling: DecoderRopeScaling) {
    this.headDim = headDim;
    const half = headDim / 2;
    const inv = computeInverseFrequencies(headDim, theta, scaling);
    const full = new Float32Array(headDim);
    full.set(inv, 0);
    full.set(inv, half);
    this.inverseFrequencies = tf.tensor1d(full, "float32");
    const r = new Float32Array(headDim * headDim);
    for (let j = 0; j < half; j++) {
      r[(j + half) * headDim + j] = -1; // out[j] = -x[j + half]
      r[j * headDim + (j + half)] = 1; // out[j + half] = x[j]
    }
    this.rotateHalfMatrix = tf.tensor2d(r, [headDim, headDim]);
  }

  /** cos/sin for integer positions `[B, T]` (any numeric dtype). */
  tables(positionIds: tf.Tensor2D): RotaryTables {
    return tf.tidy(() => {
      const [b, t] = positionIds.shape;
      const pos = tf.reshape(tf.cast(positionIds, "float32"), [b, t, 1, 1]);
      const freqs = tf.mul(pos, this.inverseFrequencies);
      return { cos: tf.cos(freqs) as tf.Tensor4D, sin: tf.sin(freqs) as tf.Tensor4D };
    });
  }

  /** Rotate `x` `[B, T, heads, headDim]`: `x · cos + rotate_half(x) · sin`. */
  apply(x: tf.Tensor4D, tables: RotaryTables): tf.Tensor4D {
    return tf.tidy(() => {
      const rotated = tf.reshape(
        tf.matMul(tf.reshape(x, [-1, this.headDim]) as tf.Tensor2D, this.rotateHalfMatrix),
        x.shape,
      );
      return tf.add(tf.mul(x, tables.cos), tf.mul(rotated, tables.sin)) as tf.Tensor4D;
    });
  }

  /** Free the constant tables. */
  dispose(): void {
    this.inverseFrequencies.dispose();
    this.rotateHalfMatrix.dispose();
  }
}
