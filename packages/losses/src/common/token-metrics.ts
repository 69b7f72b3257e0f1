/**
 * Per-token logging metrics (mean logit, argmax accuracy, entropy) computed off the gradient tape.
 * @module
 */
import { tf } from "@prefkit/core";

/** Masks selecting groups of scored positions, each `[B, T]` float32 (1 = position counts). */
export interface TokenMetricMasks {
  /** Groups whose mean logit is reported (e.g. chosen rows, rejected rows). */
  meanLogit: tf.Tensor2D[];
  /** Group whose argmax accuracy against the next token is reported. */
  accuracy: tf.Tensor2D;
  /** Group whose mean entropy is reported, or undefined to skip the entropy. */
  entropy: tf.Tensor2D | undefined;
}

/**
 * `[...meanLogit_i, accuracy, entropy?]` as one float32 vector, from logits `[B, T, V]` and the next-token
 * ids `[B, T]` (position p predicts token p + 1).
 *
 * Everything runs inside a `tf.customGrad` forward, where TF.js does not record ops on the gradient tape,
 * so the vocabulary-sized intermediates (softmax, entropy terms) are freed at once instead of being kept
 * alive until the backward pass of the step. The values are for logging only: the gradient is zero.
 */
export function tokenMetrics(logits: tf.Tensor3D, nextIds: tf.Tensor2D, masks: TokenMetricMasks): tf.Tensor1D {
  const op = tf.customGrad((...args: unknown[]) => {
    const x = args[0] as tf.Tensor3D;
    const value = tf.tidy(() => {
      const maskedMean = (v: tf.Tensor, m: tf.Tensor) => tf.div(tf.sum(tf.mul(v, m)), tf.maximum(tf.sum(m), 1));
      const out: tf.Tensor[] = [];
      const meanLogits = tf.mean(x, -1);
      for (const m of masks.meanLogit) out.push(maskedMean(meanLogits, m));
      const correct = tf.cast(tf.equal(tf.argMax(x, -1), nextIds), "float32");
      out.push(maskedMean(correct, masks.accuracy));
      if (masks.entropy !== undefined) {
        const max = tf.max(x, -1, true);
        const shifted = tf.sub(x, max);
        const exp = tf.exp(shifted);
        const z = tf.sum(exp, -1, true);
        // H = log Z − Σ p·(x − max), with p = exp / Z
        const entropy = tf.sub(
          tf.squeeze(tf.log(z), [-1]),
          tf.div(tf.sum(tf.mul(exp, shifted), -1), tf.squeeze(z, [-1])),
        );
        out.push(maskedMean(entropy, masks.entropy));
      }
      return tf.stack(out) as tf.Tensor1D;
    });
    return { value, gradFunc: () => tf.zerosLike(x) };
  });
  return op(logits) as tf.Tensor1D;
}

/**
 * The same vector as {@link tokenMetrics}, from the per-position statistics of core's
 * `fusedSequenceLogProbs(..., { withStats: true })` (`[B, T, 3]`: mean logit, entropy, argmax hit of the
 * prediction at each position) instead of the logits. No gradient flows through the statistics.
 */
export function tokenMetricsFromStats(stats: tf.Tensor3D, masks: TokenMetricMasks): tf.Tensor1D {
  return tf.tidy(() => {
    const [b, t] = stats.shape;
    const column = (c: number) => tf.reshape(tf.slice(stats, [0, 0, c], [b, t, 1]), [b, t]);
    const maskedMean = (v: tf.Tensor, m: tf.Tensor) => tf.div(tf.sum(tf.mul(v, m)), tf.maximum(tf.sum(m), 1));
    const meanLogits = column(0);
    const out: tf.Tensor[] = masks.meanLogit.map((m) => maskedMean(meanLogits, m));
    out.push(maskedMean(column(2), masks.accuracy));
    if (masks.entropy !== undefined) out.push(maskedMean(column(1), masks.entropy));
    return tf.stack(out) as tf.Tensor1D;
  });
}

/**
 * TRL's per-token logging metrics for rows in two groups (chosen/rejected, or desirable/undesirable): the mean
 * logit over the scored completion tokens of each group, the argmax accuracy on group A, and the mean entropy
 * over every scored token, as `[logitsA, logitsB, accuracyA, entropy]`. Position p predicts token p + 1, so the
 * scored positions are the completion mask shifted left. From the fused head's `stats` when given, else from
 * the logits.
 * @param completionMask `[R][T]` 1 on completion tokens.
 * @param inGroupA per row, whether it belongs to group A.
 */
export function groupTokenMetrics(
  completionMask: readonly number[][],
  inGroupA: readonly boolean[],
  ids: tf.Tensor2D,
  stats: tf.Tensor3D | undefined,
  logits: tf.Tensor3D | undefined,
): tf.Tensor1D {
  return tf.tidy(() => {
    const [r, t] = ids.shape;
    const scored = completionMask.map((row) => [...row.slice(1), 0]);
    const zeros = new Array<number>(t).fill(0);
    const group = (a: boolean) =>
      tf.tensor2d(
        scored.flatMap((row, i) => (inGroupA[i] === a ? row : zeros)),
        [r, t],
        "float32",
      );
    const groupA = group(true);
    const masks = {
      meanLogit: [groupA, group(false)],
      accuracy: groupA,
      entropy: tf.tensor2d(scored.flat(), [r, t], "float32"),
    };
    if (stats !== undefined) return tokenMetricsFromStats(stats, masks);
    const next = tf.concat([tf.slice(ids, [0, 1], [r, t - 1]), tf.zeros([r, 1], "int32")], 1) as tf.Tensor2D;
    return tokenMetrics(logits!, next, masks);
  });
}
