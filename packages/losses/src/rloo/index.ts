export {
  defaultRLOOConfig,
  RLOO_DEFAULTS,
  type RLOOConfig,
  resolveRLOOConfig,
  validateRLOOConfig,
} from "./config.js";
export {
  type RLOOAdvantageOptions,
  type RLOOAdvantageResult,
  type RLOOLossOptions,
  type RLOOLossResult,
  type RLOORewardShapingOptions,
  type RLOOShapedRewards,
  rlooAdvantages,
  rlooLoss,
  rlooShapeRewards,
} from "./loss.js";
export { type RLOOTrainerOptions, rlooAdvantageEstimator, rlooRun } from "./method.js";
export { type RLOOLossConfig, rlooObjective } from "./objective.js";
export { RLOOTrainer } from "./trainer.js";
