export { gae, type GAEOptions, type GAEResult, maskedMean, maskedVar, whiten } from "./advantages.js";
export {
  type AdaptiveKlOptions,
  defaultPPOConfig,
  PPO_DEFAULTS,
  type PPOConfig,
  type PPOConfigInput,
  type PPOValueHeadKind,
  resolvePPOConfig,
  validatePPOConfig,
} from "./config.js";
export {
  chunkColumns,
  type PPOPromptChunk,
  PromptChunkSource,
  type PromptChunkSourceOptions,
  type PromptSourcesOptions,
  promptSources,
} from "./data.js";
export {
  AdaptiveKLController,
  FixedKLController,
  type KLController,
  type KLControllerState,
  type KLEstimator,
  klControllerFromState,
  klPenalty,
} from "./kl.js";
export {
  type PPOLossConfig,
  type PPOPolicyLossOutput,
  type PPOValueLossOutput,
  ppoLoss,
  ppoPolicyLoss,
  ppoValueLoss,
  type RolloutInputs,
} from "./losses.js";
export { type PPORun, type PPOTrainerOptions, ppoRun } from "./method.js";
export {
  meanEntropy,
  objectiveMetrics,
  PPO_STAT_METRICS,
  type PPOUpdateStats,
  rolloutEntropy,
  updateStats,
  updateStatsMetrics,
} from "./metrics.js";
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
  type NamedRewardFunction,
  type PPORewardSource,
  REWARD_FUNCTION_REGISTRY,
  REWARD_FUNCTIONS,
  loadRewardFunctions,
  type RewardFunction,
  type RewardFunctionInputs,
  RewardFunctionRegistry,
  registerRewardFunction,
  rewardFunctionPlugin,
  rewardFunctionRegistryOf,
} from "./reward-function.js";
export { type AdvantageOptions, type AdvantageResult, computeAdvantages } from "./rewards.js";
export {
  collectRollout,
  type GeneratedRollout,
  type GenerationParts,
  generateRollout,
  INVALID_LOGPROB,
  type Rollout,
  type RolloutParts,
  type RolloutTimings,
  responseLogits,
  responseLogprobs,
  rowsTensor,
  type ScoreRows,
  scoreRows,
  truncateResponse,
} from "./rollout.js";
export { positionsFromMask, type RolloutSettings, type Sampled, samplePolicy } from "./sampling.js";
export { checkRewardSource, createScorer, type Scorer, type ScorerOptions } from "./scoring.js";
export {
  initialKlController,
  type PPOMicroBatch,
  PPOTask,
  type PPOTaskOptions,
  type PPOTokenIds,
  type PPOUpdateData,
  ppoTokenIds,
} from "./task.js";
export { PPO_KL_CONTROLLER_KEY, PPOTrainer } from "./trainer.js";
export {
  PolicyAndValueModel,
  type PolicyValueOutput,
  ScalarValueHead,
  selectValueFunction,
  type ValueFunctionChoice,
  type ValueFunctionOptions,
  VALUE_HEAD_BIAS_NAME,
  VALUE_HEAD_FILE,
  VALUE_HEAD_WEIGHT_NAME,
  VALUE_MODEL_FILE,
  VALUE_MODEL_PREFIX,
  type ValueSource,
} from "./value.js";
