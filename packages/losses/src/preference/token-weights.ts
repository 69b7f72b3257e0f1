/**
 * Per-token and per-pair weights of two DPO variants, as TRL's `DPOTrainer._compute_loss` builds them:
 * LD-DPO's length desensitisation (`ld_alpha`) and WPO's policy-likelihood weights (`use_weighting`).
 * @module
 */
import { tf } from "@prefkit/core";

/**
 * The scored completion positions of each row: token t counts when `completionMask[t]` is 1 and t ≥ 1 (the
 * first token has no prefix to be predicted from; TRL's `shift_completion_mask = completion_mask[..., 1:]`).
 */
function scoredMask(completionMask: readonly number[][]): number[][] {
  return completionMask.map((row) => row.map((m, t) => (t > 0 && m === 1 ? 1 : 0)));
}

/**
 * LD-DPO's token weights (Liu et al. 2024, TRL's `ld_alpha`), mirroring the `ld_alpha` branch of TRL's
 * `DPOTrainer._compute_loss` and `compute_ref_log_probs`: per pair the shared length is the smaller of the
 * two completions' scored lengths; each row's first `shared` scored completion tokens weigh 1, its later
 * ("verbose") tokens weigh α, everything else 0. The summed log-prob is then
 * `Σ shared + α·Σ tail`, for the policy and the reference alike.
 * @param completionMask `[2B][T]`, chosen rows first (a `DpoBatch`'s), 1 on completion tokens.
 * @param alpha α in [0, 1]: 1 weighs every token (plain DPO), 0 drops the tails.
 * @returns `[2B][T]` weights aligned with `sequenceLogProbs(...).perToken` (column t weighs token t).
 */
export function ldTokenWeights(completionMask: readonly number[][], alpha: number): number[][] {
  const scored = scoredMask(completionMask);
  const b = scored.length / 2;
  const lengths = scored.map((row) => row.reduce((n, m) => n + m, 0));
  return scored.map((row, i) => {
    const shared = Math.min(lengths[i % b]!, lengths[(i % b) + b]!);
    let position = 0; // TRL's comp_pos = shift_completion_mask.cumsum(dim=1)
    return row.map((m) => {
      if (m === 0) return 0;
      position++;
      return position <= shared ? 1 : alpha;
    });
  });
}

/** `Σ_t weights[b][t] · perToken[b][t]` per row, `[2B]`: LD-DPO's summed log-probs. Differentiable in `perToken`. */
export function weightedLogpSums(perToken: tf.Tensor2D, weights: readonly number[][]): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.mul(perToken, tf.tensor2d(weights as number[][], perToken.shape, "float32")), 1));
}

/**
 * WPO's per-pair weights (Zhou et al. 2024, TRL's `use_weighting`), mirroring the `use_weighting` block of
 * TRL's `DPOTrainer._compute_loss` (Eq. 2 of the paper): per token the log of the policy's self-probability
 * `log Σ_v p_v² = logsumexp(2·logits) − 2·logsumexp(logits)`, per sequence
 * `w = exp(Σ_t (log p_t − log Σ_v p_v²) / n)` over its n scored completion tokens (n clamped to ≥ 1), and per
 * pair `w_c · w_r`. Carries no gradient (TRL computes it under `torch.no_grad()`): it is one custom op whose
 * gradient is zero, so the tape never differentiates the two vocabulary-wide logsumexps.
 * @param logits `[2B, T, V]` policy logits, chosen rows first (position t predicts token t + 1).
 * @param perToken `[2B, T]` log-probs of token t at column t, 0 outside the completion (`sequenceLogProbs`).
 * @param completionMask `[2B][T]`, 1 on completion tokens.
 * @returns `[B]` weights; owned by the caller.
 */
export function wpoPairWeights(
  logits: tf.Tensor3D,
  perToken: tf.Tensor2D,
  completionMask: readonly number[][],
): tf.Tensor1D {
  const [rows, t] = perToken.shape;
  const b = rows / 2;
  const op = tf.customGrad((...args: unknown[]) => {
    const [x, logps] = args as [tf.Tensor3D, tf.Tensor2D];
    const value = tf.tidy(() => {
      const logSelfProb = tf.sub(tf.logSumExp(tf.mul(x, 2), -1), tf.mul(tf.logSumExp(x, -1), 2)); // [2B, T]
      // Position p's value belongs to token p + 1: shift right so column t holds token t's.
      const perTokenDenominator = tf.pad(tf.slice(logSelfProb, [0, 0], [rows, t - 1]), [
        [0, 0],
        [1, 0],
      ]);
      const mask = tf.tensor2d(scoredMask(completionMask), [rows, t], "float32");
      const aligned = tf.mul(tf.sub(logps, perTokenDenominator), mask);
      const weights = tf.exp(tf.div(tf.sum(aligned, 1), tf.maximum(tf.sum(mask, 1), 1)));
      return tf.mul(tf.slice(weights, [0], [b]), tf.slice(weights, [b], [b]));
    });
    const [logitsShape, logpsShape] = [x.shape, logps.shape];
    return { value, gradFunc: () => [tf.zeros(logitsShape), tf.zeros(logpsShape)] };
  });
  return op(logits, perToken) as tf.Tensor1D;
}
