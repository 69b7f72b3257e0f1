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
  checkLossName,
  defaultGRPOConfig,
  GROUP_ROLLOUT_DEFAULTS,
  GRPO_DEFAULTS,
  type GRPOConfig,
  type GroupRolloutConfig,
  isGRPOAggregation,
  resolveGRPOConfig,
  validateGRPOConfig,
  validateGroupRolloutConfig,
} from "./config.js";
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
export {
  type GroupRolloutMethod,
  type GroupRolloutRun,
  type GroupRolloutTrainerOptions,
  type GRPOTrainerOptions,
  groupRolloutRun,
  grpoRun,
} from "./method.js";
export { clipRatioMetrics, type GroupRolloutInputs, type GRPOLossConfig, grpoObjective } from "./objective.js";
export {
  type RewardFuncSource,
  type RewardFuncs,
  type RewardFuncsInput,
  type RewardFuncsOptions,
  resolveRewardFuncs,
} from "./reward-funcs.js";
export {
  type AdvantageEstimator,
  type EstimatedAdvantages,
  type GroupMicroBatch,
  type GroupRollout,
  GroupRolloutTask,
  type GroupRolloutTaskOptions,
  type GroupUpdateTimings,
  type ScoredCompletions,
} from "./task.js";
export { GroupRolloutTrainer, GRPOTrainer } from "./trainer.js";
