/**
 * Per-token and per-sequence log-probabilities, the quantity DPO, KTO, PPO and SFT losses are
 * built from. Both functions are differentiable with respect to the logits (and through them the
 * model's variables) and do no data syncs.
 * @module
 */
import { tf } from "../engine/tf.js";
import type { CausalLM, IntMatrix } from "../interfaces/index.js";

function intTensor(m: IntMatrix): tf.Tensor2D {
  if (Array.isArray(m)) return tf.tensor2d(m.flat(), [m.length, m.length > 0 ? m[0]!.length : 0], "int32");
  return m.dtype === "int32" ? m : tf.cast(m, "int32");
}

/**
 * `log_softmax(logits)[b, t, labels[b, t]]`, shaped `[B, T]`.
 *
 * Computed as `logits[label] − logsumexp(logits)` inside a `tf.customGrad`, so no `[B, T, V]`
 * log-softmax is kept after the forward pass and the backward pass is the closed form
 * `(onehot(label) − softmax(logits)) · dy`, which is much cheaper than differentiating
 * `tf.logSumExp` (whose gradient goes through `Max` and an `Equal` over the vocabulary).
 * @param logits float32 `[B, T, V]`.
 * @param labels token ids `[B, T]`. Ids outside `[0, V)` (e.g. TRL's −100) are clamped into range,
 *   so their values are meaningless: mask those positions afterwards.
 */
export function selectiveLogProbs(logits: tf.Tensor3D, labels: IntMatrix): tf.Tensor2D {
  const [b, t, v] = logits.shape;
  const n = b * t;
  const labelsFlat = tf.tidy(() => tf.clipByValue(tf.reshape(intTensor(labels), [n]), 0, v - 1) as tf.Tensor1D);
  const op = tf.customGrad((...args: unknown[]) => {
    const x = args[0] as tf.Tensor3D;
    const save = args[1] as tf.GradSaveFunc;
    const flat = tf.reshape(x, [n, v]);
    const max = tf.max(flat, -1, true);
    const logSumExp = tf.add(tf.log(tf.sum(tf.exp(tf.sub(flat, max)), -1, true)), max); // [N, 1]
    const index = tf.add(tf.mul(tf.range(0, n, 1, "int32"), tf.scalar(v, "int32")), labelsFlat);
    const picked = tf.gather(tf.reshape(flat, [-1]), index);
    const value = tf.reshape(tf.sub(picked, tf.reshape(logSumExp, [n])), [b, t]);
    save([x, logSumExp, labelsFlat]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [savedX, savedLse, savedLabels] = saved as [tf.Tensor, tf.Tensor, tf.Tensor1D];
        const probs = tf.exp(tf.sub(tf.reshape(savedX, [n, v]), savedLse));
        // oneHot's dtype argument is ignored by the wasm kernel (int bits in a float tensor): cast instead.
        const oneHot = tf.cast(tf.oneHot(savedLabels, v), "float32");
        return tf.reshape(tf.mul(tf.sub(oneHot, probs), tf.reshape(dy, [n, 1])), [b, t, v]);
      },
    };
  });
  try {
    return op(logits) as tf.Tensor2D;
  } finally {
    labelsFlat.dispose();
  }
}

/** Result of {@link sequenceLogProbs}; every tensor is float32 and owned by the caller. */
export interface SequenceLogProbs {
  /** Σ over completion tokens of log p(token | prefix), `[B]` (TRL's DPO "logps"). */
  sums: tf.Tensor1D;
  /** Number of completion tokens scored per row, `[B]` (the first token can never be scored). */
  counts: tf.Tensor1D;
  /** `sums / max(counts, 1)`, `[B]` (IPO / SimPO-style averages). */
  means: tf.Tensor1D;
  /** `[B, T]`: at t, log p(inputIds[t] | inputIds[<t]) where the completion mask is 1, else 0 (column 0 is 0). */
  perToken: tf.Tensor2D;
  /**
   * `[B, T]`: at t, log p(inputIds[t + 1] | inputIds[≤t]) for every position, unmasked (the last column scores a
   * dummy label): what a loss over other tokens than the completion's (ORPO's prompt + completion NLL) masks.
   */
  nextTokenLogProbs: tf.Tensor2D;
}

/** Options of {@link sequenceLogProbs}. */
export interface SequenceLogProbsOptions {
  /** Padding mask passed to the model's forward (ignored when logits are given). Defaults to all ones. */
  attentionMask?: IntMatrix;
}

/**
 * Summed and mean log-probabilities of the completion tokens of each row, with the causal shift
 * (the logits at t − 1 predict token t). `completionMask[b][t]` = 1 marks token t as part of the
 * completion (e.g. TRL's `completion_mask`, or prompt-excluded `loss_mask`).
 *
 * Rather than slicing `[B, T−1, V]` out of the logits, the labels are shifted instead (the last
 * position gets a dummy label that is masked out), so no vocabulary-sized copy is made.
 * @param source a model (run on `inputIds` with `options.attentionMask`) or its logits `[B, T, V]`.
 * @param inputIds token ids `[B, T]`.
 * @param completionMask `[B, T]`, 1 on completion tokens.
 */
export function sequenceLogProbs(
  source: CausalLM | tf.Tensor3D,
  inputIds: IntMatrix,
  completionMask: IntMatrix,
  options: SequenceLogProbsOptions = {},
): SequenceLogProbs {
  return tf.tidy(() => {
    const logits =
      source instanceof tf.Tensor
        ? source
        : source.forward({
            inputIds,
            ...(options.attentionMask !== undefined ? { attentionMask: options.attentionMask } : {}),
          }).logits;
    const { nextIds, nextMask } = shiftedTargets(inputIds, completionMask);
    return reduceTokenLogProbs(selectiveLogProbs(logits, nextIds), nextMask);
  });
}

/**
 * The labels shifted left (position t scores token t + 1; the last position gets a dummy label 0) and the
 * completion mask shifted the same way (0 at the last position): `nextIds` int32 `[B, T]`, `nextMask` `[B, T]`.
 */
export function shiftedTargets(
  inputIds: IntMatrix,
  completionMask: IntMatrix,
): { nextIds: tf.Tensor2D; nextMask: tf.Tensor2D } {
  const ids = intTensor(inputIds);
  const [b, t] = ids.shape;
  const nextIds = tf.concat([tf.slice(ids, [0, 1], [b, t - 1]), tf.zeros([b, 1], "int32")], 1) as tf.Tensor2D;
  const mask = tf.cast(intTensor(completionMask), "float32");
  const nextMask = tf.concat([tf.slice(mask, [0, 1], [b, t - 1]), tf.zeros([b, 1])], 1) as tf.Tensor2D;
  return { nextIds, nextMask };
}

/** Sums, counts, means and the per-token layout of next-token log-probs `[B, T]` under `nextMask` (see {@link shiftedTargets}). */
export function reduceTokenLogProbs(nextTokenLogProbs: tf.Tensor2D, nextMask: tf.Tensor2D) {
  const [b, t] = nextTokenLogProbs.shape;
  const scored = tf.mul(nextTokenLogProbs, nextMask);
  const sums = tf.sum(scored, 1) as tf.Tensor1D;
  const counts = tf.sum(nextMask, 1) as tf.Tensor1D;
  const means = tf.div(sums, tf.maximum(counts, 1)) as tf.Tensor1D;
  const perToken = tf.pad(tf.slice(scored, [0, 0], [b, t - 1]), [
    [0, 0],
    [1, 0],
  ]) as tf.Tensor2D;
  return { sums, counts, means, perToken, nextTokenLogProbs };
}
