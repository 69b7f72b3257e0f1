export {
  type GroupAdvantageOptions,
  type GroupAdvantageResult,
  groupAdvantages,
  type MultiObjectiveAggregation,
  type RewardMetrics,
  type RewardsInput,
  rewardMatrix,
  rewardMetrics,
  type ScaleRewards,
  weightedRewardSum,
} from "./advantages.js";
export {
  type ClippedSurrogate,
  type ClipRange,
  type ClipRatios,
  clipBounds,
  clippedSurrogate,
  GRPO_LOSS_TYPES,
  type GRPOLossOptions,
  type GRPOLossResult,
  type GRPOLossType,
  grpoLoss,
} from "./loss.js";
