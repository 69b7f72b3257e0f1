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
