/**
 * GRPO's group-relative advantages and reward bookkeeping (TRL's `GRPOTrainer._generate_and_score_completions`).
 * Rewards come from JavaScript reward functions, so these work on plain numbers in float64; a reward of
 * `null` (TRL's `None`: "this function does not apply to this completion") is NaN here, as in TRL.
 * @module
 */
import { ConfigError, tf } from "@prefkit/core";
import { checkNumber, checkOneOf } from "../common/checks.js";
import { checkGroups, groupsOf, isZeroStd, mean, nanMean, nanStd, nanSum, unbiasedStd } from "./stats.js";

/** One reward per completion, or one per completion and reward function ([B][F]); `null` = not applicable. */
export type RewardsInput = tf.Tensor | readonly (number | null)[] | readonly (readonly (number | null)[])[];

/**
 * How the group-centred rewards are scaled (TRL `scale_rewards`): by the group's std (`"group"` or `true`,
 * the default), the whole batch's std (`"batch"`), or not at all (`"none"` or `false`).
 */
export type ScaleRewards = "group" | "batch" | "none" | boolean;

/**
 * How several reward functions combine (TRL `multi_objective_aggregation`): `"sum_then_normalize"` (default)
 * sums the weighted rewards, then centres per group and scales per `scaleRewards`; `"normalize_then_sum"`
 * (GDPO) normalises each function within its group first, sums with the weights, then normalises over the batch.
 */
export type MultiObjectiveAggregation = "sum_then_normalize" | "normalize_then_sum";

/** Options of {@link groupAdvantages}. */
export interface GroupAdvantageOptions {
  /** Scaling of the centred rewards (default `"group"`). Ignored by `"normalize_then_sum"`. */
  scaleRewards?: ScaleRewards;
  /** One weight per reward function (default all 1). */
  rewardWeights?: readonly number[] | null;
  /** How several reward functions combine (default `"sum_then_normalize"`). */
  multiObjectiveAggregation?: MultiObjectiveAggregation;
}

/** What {@link groupAdvantages} returns, in row order. */
export interface GroupAdvantageResult {
  /** One advantage per completion, shape [B]. */
  advantages: number[];
  /** The aggregated reward each advantage came from (weighted NaN-ignoring sum; GDPO: of normalised rewards). */
  rewards: number[];
  /** The std each row was (or, with `"none"`, would have been) divided by. */
  std: number[];
  /** Share of rows whose std is 0 (TRL `frac_reward_zero_std`: for equal groups, the share of groups). */
  fracRewardZeroStd: number;
}

/** TRL's reward metrics of one batch, keyed by TRL's names. */
export type RewardMetrics = Record<string, number>;

/** The rewards as a [B][F] matrix of numbers, `null` as NaN. */
export function rewardMatrix(rewards: RewardsInput): number[][] {
  const raw = rewards instanceof tf.Tensor ? (rewards.arraySync() as number[] | number[][]) : rewards;
  return raw.map((row) => (Array.isArray(row) ? row : [row]).map((x: number | null) => (x === null ? Number.NaN : x)));
}

function resolveWeights(weights: readonly number[] | null | undefined, functions: number): readonly number[] {
  if (weights === undefined || weights === null) return Array.from({ length: functions }, () => 1);
  if (weights.length !== functions) {
    throw new ConfigError(`must hold one weight per reward function (${functions}), got ${weights.length}`, {
      field: "rewardWeights",
    });
  }
  weights.forEach((w, i) => {
    checkNumber(`rewardWeights[${i}]`, w, () => true, "a finite number");
  });
  return weights;
}

/**
 * The weighted reward of each completion over several reward functions, as TRL's
 * `(rewards_per_func * reward_weights).nansum(dim=1)`: a `null`/NaN reward is left out of the sum (a row
 * where every function returned `null` sums to 0).
 *
 * @param rewards [B][F] rewards (or [B] for one function); `null` = not applicable
 * @param rewardWeights one weight per function (default all 1)
 * @throws ConfigError when the weights do not match the number of functions
 */
export function weightedRewardSum(rewards: RewardsInput, rewardWeights?: readonly number[] | null): number[] {
  const matrix = rewardMatrix(rewards);
  const weights = resolveWeights(rewardWeights, matrix[0]?.length ?? 0);
  return matrix.map((row) => nanSum(row.map((x, f) => x * weights[f]!)));
}

/** Maps `scaleRewards` to TRL's strings (`GRPOConfig.__post_init__`: true → "group", false → "none"). */
function scaleMode(scale: ScaleRewards | undefined): "group" | "batch" | "none" {
  if (scale === undefined || scale === true) return "group";
  if (scale === false) return "none";
  checkOneOf("scaleRewards", scale, ["group", "batch", "none"] as const);
  return scale;
}

/**
 * GRPO's group-relative advantages, as TRL's `GRPOTrainer._generate_and_score_completions`. Rows of one
 * prompt are consecutive, `numGenerations` per group.
 *
 * `"sum_then_normalize"` (default): R = weighted NaN-ignoring sum over reward functions; A = R − mean of its
 * group, divided by (std + 1e-4) where std is the group's unbiased std (`"group"`), the batch's (`"batch"`),
 * or not divided (`"none"`; TRL still computes the group std, for `frac_reward_zero_std`).
 *
 * `"normalize_then_sum"` (GDPO): each function's rewards are centred and scaled by (std + 1e-4) within the
 * group, ignoring NaNs (TRL's `nanmean`/`nanstd`), summed with the weights (NaN-ignoring), then
 * A = (R − batch mean)/(batch std + 1e-4); `scaleRewards` is not used.
 *
 * With one generation per group the std is taken as 0 (as TRL does in evaluation).
 *
 * @param rewards [B][F] rewards, or [B] for one reward function; `null` = not applicable
 * @param numGenerations completions per prompt (G); must divide B
 * @param options scaling, weights and multi-objective aggregation
 * @throws ConfigError for a group size that does not divide B, bad weights or an unknown mode
 */
export function groupAdvantages(
  rewards: RewardsInput,
  numGenerations: number,
  options: GroupAdvantageOptions = {},
): GroupAdvantageResult {
  const matrix = rewardMatrix(rewards);
  checkGroups(matrix.length, numGenerations);
  const scale = scaleMode(options.scaleRewards);
  const aggregation = options.multiObjectiveAggregation ?? "sum_then_normalize";
  checkOneOf("multiObjectiveAggregation", aggregation, ["sum_then_normalize", "normalize_then_sum"] as const);
  const weights = resolveWeights(options.rewardWeights, matrix[0]?.length ?? 0);
  const batchStd = (xs: readonly number[]) => (xs.length > 1 ? unbiasedStd(xs) : 0);

  let summed: number[];
  let centred: number[];
  let std: number[];
  if (aggregation === "sum_then_normalize") {
    summed = weightedRewardSum(matrix, weights);
    const groups = groupsOf(summed, numGenerations);
    const groupMean = groups.flatMap((g) => g.map(() => mean(g)));
    centred = summed.map((r, i) => r - groupMean[i]!);
    std =
      scale === "batch"
        ? summed.map(() => batchStd(summed))
        : groups.flatMap((g) => g.map(() => (numGenerations > 1 ? unbiasedStd(g) : 0)));
  } else {
    const functions = weights.length;
    const normalised = matrix.map((row) => row.slice());
    for (let f = 0; f < functions; f++) {
      groupsOf(
        matrix.map((row) => row[f]!),
        numGenerations,
      ).forEach((g, k) => {
        const m = nanMean(g);
        const s = numGenerations > 1 ? nanStd(g) : 0;
        g.forEach((x, j) => {
          normalised[k * numGenerations + j]![f] = (x - m) / (s + 1e-4);
        });
      });
    }
    summed = weightedRewardSum(normalised, weights);
    const batchMean = mean(summed);
    centred = summed.map((r) => r - batchMean);
    std = summed.map(() => batchStd(summed));
  }
  const divide = aggregation === "normalize_then_sum" || scale !== "none";
  return {
    advantages: centred.map((a, i) => (divide ? a / (std[i]! + 1e-4) : a)),
    rewards: summed,
    std,
    fracRewardZeroStd: mean(std.map((s) => (isZeroStd(s) ? 1 : 0))),
  };
}

/**
 * TRL's reward metrics for GRPO and RLOO: `rewards/<name>/mean` and `rewards/<name>/std` per function over
 * the completions it applied to (NaN-ignoring), and `reward` / `reward_std`, the mean and std of the
 * UNWEIGHTED NaN-ignoring sum over functions (TRL logs `rewards_per_func.nansum(dim=1)`, not the weighted
 * reward the advantages use).
 *
 * @param rewards [B][F] rewards; `null` = not applicable
 * @param functionNames one name per reward function, in column order
 * @throws ConfigError when the names do not match the number of functions
 */
export function rewardMetrics(rewards: RewardsInput, functionNames: readonly string[]): RewardMetrics {
  const matrix = rewardMatrix(rewards);
  if ((matrix[0]?.length ?? 0) !== functionNames.length) {
    throw new ConfigError(`must name every reward function (${matrix[0]?.length ?? 0}), got ${functionNames.length}`, {
      field: "functionNames",
    });
  }
  const metrics: RewardMetrics = {};
  functionNames.forEach((name, f) => {
    const column = matrix.map((row) => row[f]!);
    metrics[`rewards/${name}/mean`] = nanMean(column);
    metrics[`rewards/${name}/std`] = nanStd(column);
  });
  const total = weightedRewardSum(matrix);
  metrics["reward"] = mean(total);
  metrics["reward_std"] = unbiasedStd(total);
  return metrics;
}
