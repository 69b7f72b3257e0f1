export {
  defaultRewardConfig,
  REWARD_DEFAULTS,
  type RewardConfig,
  resolveRewardConfig,
  validateRewardConfig,
} from "./config.js";
export {
  createRewardLoss,
  REWARD_METRIC_NAMES,
  type RewardLoss,
  type RewardLossOptions,
  type RewardLossOutput,
  rewardLoss,
} from "./loss.js";
export { type RewardDroppedRows, type RewardRun, type RewardTrainerOptions, rewardRun } from "./method.js";
export { collateRewardRows, PairScoreTask, type RewardTrainerBatch } from "./task.js";
export { RewardTrainer } from "./trainer.js";
