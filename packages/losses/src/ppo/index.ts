export { gae, type GAEOptions, type GAEResult, maskedMean, maskedVar, whiten } from "./advantages.js";
export { defaultPPOConfig, type PPOConfig, validatePPOConfig } from "./config.js";
export {
  AdaptiveKLController,
  FixedKLController,
  type KLController,
  type KLControllerState,
  type KLEstimator,
  klControllerFromState,
  klPenalty,
} from "./kl.js";
export { type PPOPolicyLossOutput, type PPOValueLossOutput, ppoPolicyLoss, ppoValueLoss } from "./losses.js";
