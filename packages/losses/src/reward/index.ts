export { defaultRewardConfig, type RewardConfig, validateRewardConfig } from "./config.js";
export {
  createRewardLoss,
  REWARD_METRIC_NAMES,
  type RewardLossInputs,
  type RewardLossOptions,
  type RewardLossOutput,
  rewardLoss,
} from "./loss.js";
export {
  RewardTrainer,
  type RewardDroppedRows,
  type RewardTrainerBatch,
  type RewardTrainerOptions,
  resolveRewardConfig,
} from "./trainer.js";
