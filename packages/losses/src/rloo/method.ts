/**
 * How an RLOO run is composed: GRPO's group-rollout run with TRL's RLOO advantages (β·k1 reward shaping,
 * leave-one-out baseline, optional batch normalisation) and the `"rloo"` loss.
 * @module
 */
import { weightedRewardSum } from "../grpo/advantages.js";
import { type GroupRolloutRun, type GroupRolloutTrainerOptions, groupRolloutRun } from "../grpo/method.js";
import type { AdvantageEstimator } from "../grpo/task.js";
import { type RLOOConfig, resolveRLOOConfig } from "./config.js";
import { rlooAdvantages, rlooShapeRewards } from "./loss.js";

/** What the `RLOOTrainer` (and `createTrainer("rloo", …)`) takes. */
export interface RLOOTrainerOptions extends GroupRolloutTrainerOptions {
  /** The config; missing fields take TRL's defaults (`RLOO_DEFAULTS`). */
  args?: Partial<RLOOConfig>;
}

/**
 * RLOO's advantages of a rollout, as TRL's `RLOOTrainer`: R = weighted reward sum, clamped to
 * `rewardClipRange`, minus β · Σ_t (log π_old − log π_ref) over the loss tokens when β ≠ 0 (logged as `kl`, the
 * token mean of the k1 KL); A = R − mean of the other k − 1 rewards of the group, optionally normalised.
 */
export function rlooAdvantageEstimator(args: RLOOConfig): AdvantageEstimator {
  return ({ rollout, rewards, mask }) => {
    const summed = weightedRewardSum(rewards, args.rewardWeights);
    const range = args.rewardClipRange;
    let shaped = range === null ? summed : summed.map((r) => Math.min(Math.max(r, range[0]), range[1]));
    let metrics: Record<string, number> = {};
    if (args.beta !== 0) {
      const out = rlooShapeRewards(summed, rollout.logprobs, rollout.refLogprobs!, mask, {
        beta: args.beta,
        rewardClipRange: range,
      });
      shaped = out.rewards;
      metrics = { kl: out.kl };
    }
    const out = rlooAdvantages(shaped, args.numGenerations, { normalize: args.normalizeAdvantages });
    return { advantages: out.advantages, fracRewardZeroStd: out.fracRewardZeroStd, metrics };
  };
}

/** Compose-ready description of an RLOO run (see the module comment). */
export function rlooRun(options: RLOOTrainerOptions): GroupRolloutRun<RLOOConfig> {
  const args = resolveRLOOConfig(options.args);
  return groupRolloutRun(options, args, {
    name: "rloo",
    lossName: args.lossType,
    estimator: rlooAdvantageEstimator(args),
    weightByTokens: false,
  });
}
