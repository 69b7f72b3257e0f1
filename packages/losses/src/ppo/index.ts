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
export {
  type AdaptiveKlOptions,
  type PPOTrainingArguments,
  type PPOValueHeadKind,
  resolvePPOConfig,
} from "./config.js";
export {
  encodePrompt,
  type LeftPadded,
  leftPad,
  type PromptDatasetInput,
  type TokenizedPrompt,
  type TokenizePromptsOptions,
  tokenizePrompts,
} from "./prompts.js";
export {
  defaultRewardFunctionRegistry,
  REWARD_FUNCTION_REGISTRY,
  type RewardFunction,
  type RewardFunctionIds,
  RewardFunctionRegistry,
  registerRewardFunction,
  rewardFunctionPlugin,
  rewardFunctionRegistryOf,
} from "./reward-function.js";
export { type AdvantageOptions, type AdvantageResult, computeAdvantages } from "./rewards.js";
export {
  collectRollout,
  INVALID_LOGPROB,
  positionsFromMask,
  type Rollout,
  type RolloutParts,
  type RolloutSettings,
  responseLogprobs,
  type ScoreRows,
  truncateResponse,
} from "./rollout.js";
export {
  PPO_KL_CONTROLLER_KEY,
  type PPOPromptChunk,
  type PPORewardSource,
  PPOTrainer,
  type PPOTrainerOptions,
  type PPOUpdateStats,
  type ResolvedPPOConfig,
} from "./trainer.js";
export {
  PolicyAndValueModel,
  type PolicyValueOutput,
  ScalarValueHead,
  VALUE_HEAD_BIAS_NAME,
  VALUE_HEAD_FILE,
  VALUE_HEAD_WEIGHT_NAME,
  VALUE_MODEL_FILE,
  VALUE_MODEL_PREFIX,
  type ValueSource,
} from "./value.js";
