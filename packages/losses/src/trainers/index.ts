export {
  DPO_LN2_WARNING_KEY,
  DPO_REF_LOGPS_KEY,
  DPOTrainer,
  type DPOTrainerBatch,
  type DPOTrainerOptions,
  type DPOTrainingArguments,
  type Ln2WarningOptions,
  type Ln2WarningState,
  type ResolvedDPOConfig,
  resolveDPOConfig,
} from "./dpo-trainer.js";
export {
  type CompletionDatasetInput,
  type PreferenceDatasetInput,
  type ResolvedDataset,
  resolveCompletionDataset,
  resolvePreferenceDataset,
} from "./datasets.js";
export {
  completionLogProbSums,
  preferenceDatasetFingerprint,
  type RefLogProbs,
  type RefLogProbsFile,
  type ReferenceKind,
  type ReferenceSource,
  readRefLogProbs,
  refLogProbsPath,
  resolveReference,
  weightsFingerprint,
  writeRefLogProbs,
} from "./reference.js";
export { defaultSFTConfig, type SFTConfig, validateSFTConfig } from "./sft-config.js";
export { SFTTrainer, type SFTTrainerBatch, type SFTTrainerOptions } from "./sft-trainer.js";
export { DeferredBatchSource, ensureBuiltinLosses, lossFactory } from "./setup.js";
export { type TokenMetricMasks, tokenMetrics, tokenMetricsFromStats } from "./token-metrics.js";
export { PreparingTrainer, type TrainerCommonOptions } from "./preparing-trainer.js";
