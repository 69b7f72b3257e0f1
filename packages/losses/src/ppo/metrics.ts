/**
 * TRL's PPO metrics (step 10 of trl-parity.md): the objective of a rollout (`objective/*`), and the
 * per-micro-batch statistics of an update (TRL's `*_stats`) with their averages.
 * @module
 */
import { tf } from "@prefkit/core";
import type { AdvantageResult } from "./rewards.js";
import type { Rollout } from "./rollout.js";

/** Per-micro-batch statistics of the last update, indexed [ppoEpoch][miniBatch][microBatch] as TRL's `*_stats`. */
export interface PPOUpdateStats {
  /** mean ratio over the micro-batch (`val/ratio` entries). */
  ratio: number[][][];
  /** 0.5·mean(Δlogp²). */
  approxkl: number[][][];
  /** Policy clip fraction. */
  pgClipfrac: number[][][];
  /** Policy loss. */
  pgLoss: number[][][];
  /** Value loss. */
  vfLoss: number[][][];
  /** Value clip fraction. */
  vfClipfrac: number[][][];
  /** Mean entropy of the temperature-scaled policy. */
  entropy: number[][][];
}

/** The logged metric each {@link PPOUpdateStats} entry is averaged into. */
export const PPO_STAT_METRICS: Readonly<Record<keyof PPOUpdateStats, string>> = Object.freeze({
  ratio: "val/ratio",
  approxkl: "policy/approxkl_avg",
  pgClipfrac: "policy/clipfrac_avg",
  pgLoss: "loss/policy_avg",
  vfLoss: "loss/value_avg",
  vfClipfrac: "val/clipfrac_avg",
  entropy: "policy/entropy_avg",
});

const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
const unbiasedVar = (xs: number[]) => {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1);
};

/** Mean over rows of each row's sum (of the entries where `keep` is 1, when given): TRL's `x.sum(1).mean()`. */
function rowSumMean(rows: number[][], keep?: number[][]): number {
  return mean(rows.map((r, i) => r.reduce((s, x, t) => s + (keep === undefined || keep[i]![t] ? x : 0), 0)));
}

/**
 * The objective of a rollout: `objective/kl` (Σ per-token KL, mean over rows), `objective/non_score_reward`
 * (Σ −β·KL), `objective/scores` (mean score, eos penalty applied) and `objective/rlhf_reward` (their sum).
 */
export function objectiveMetrics(rollout: Rollout, targets: AdvantageResult): Record<string, number> {
  const nonScore = rowSumMean(targets.nonScoreReward);
  const scores = mean(rollout.scores);
  return {
    "objective/kl": rowSumMean(targets.kl),
    "objective/non_score_reward": nonScore,
    "objective/rlhf_reward": nonScore + scores,
    "objective/scores": scores,
  };
}

/** `objective/entropy`: Σ −log π_old over the valid response tokens, mean over rows. */
export function rolloutEntropy(rollout: Rollout, targets: AdvantageResult): number {
  return rowSumMean(
    rollout.logprobs.map((r) => r.map((x) => -x)),
    targets.mask,
  );
}

/** The entropy of each categorical distribution of `logits` `[b, W, V]`: `[b, W]`. */
function tokenEntropy(logits: tf.Tensor): tf.Tensor {
  const lse = tf.logSumExp(logits, -1);
  return tf.sub(lse, tf.sum(tf.mul(tf.softmax(logits), logits), -1));
}

// Metrics without a gradient, as zero-gradient custom ops: inside a gradient tape the `[b, W, V]`
// intermediates of a plain op would be kept for a backward pass that never reaches them.
const entropyMean = tf.customGrad((...args: unknown[]) => {
  const logits = args[0] as tf.Tensor;
  return { value: tf.mean(tokenEntropy(logits)), gradFunc: () => tf.zerosLike(logits) };
}) as (logits: tf.Tensor) => tf.Scalar;

const maskedEntropyMean = tf.customGrad((...args: unknown[]) => {
  const [logits, mask] = args as [tf.Tensor, tf.Tensor];
  return {
    value: tf.div(tf.sum(tf.mul(tokenEntropy(logits), mask)), tf.maximum(tf.sum(mask), 1)),
    gradFunc: () => [tf.zerosLike(logits), tf.zerosLike(mask)],
  };
}) as (logits: tf.Tensor, mask: tf.Tensor) => tf.Scalar;

/**
 * Mean entropy of the categorical distributions `logits` `[b, W, V]` (a scalar without gradient, cheap inside
 * a gradient tape): over every position, or over those where `mask` `[b, W]` is 1 (divided by max(Σmask, 1),
 * as TRL's GRPO).
 */
export function meanEntropy(logits: tf.Tensor3D, mask?: tf.Tensor2D): tf.Scalar {
  return mask === undefined ? entropyMean(logits) : maskedEntropyMean(logits, mask);
}

/**
 * An update's {@link PPOUpdateStats} from each optimizer step's micro-batch metrics (`[step][micro]`, steps
 * in epoch-major order). A statistic the loss did not return stays empty.
 */
export function updateStats(
  microMetrics: Array<Array<Record<string, number>>>,
  numPpoEpochs: number,
  numMiniBatches: number,
): PPOUpdateStats {
  const stats = {} as PPOUpdateStats;
  for (const [key, name] of Object.entries(PPO_STAT_METRICS) as Array<[keyof PPOUpdateStats, string]>) {
    stats[key] = Array.from({ length: numPpoEpochs }, (_, e) =>
      Array.from({ length: numMiniBatches }, (_, m) =>
        (microMetrics[e * numMiniBatches + m] ?? []).flatMap((micro) => (name in micro ? [micro[name]!] : [])),
      ),
    );
  }
  return stats;
}

/** The update's averages of its statistics (TRL's `*_avg`, `val/ratio`) and `val/ratio_var` (unbiased). */
export function updateStatsMetrics(stats: PPOUpdateStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, name] of Object.entries(PPO_STAT_METRICS) as Array<[keyof PPOUpdateStats, string]>) {
    const values = stats[key].flat(2);
    if (values.length > 0) out[name] = mean(values);
  }
  if (stats.ratio.flat(2).length > 0) out["val/ratio_var"] = unbiasedVar(stats.ratio.flat(2));
  return out;
}
