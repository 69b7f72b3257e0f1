export {
  DPO_DEFAULTS,
  DPO_LOSS_TYPES,
  type DPOConfig,
  type DPOConfigInput,
  type DPOLossName,
  type DPOLossOptions,
  type DPOLossType,
  defaultDPOConfig,
  F_DIVERGENCE_TYPES,
  type FDivergenceType,
  resolveDPOConfig,
  validateDPOConfig,
} from "./config.js";
/** `DPOConfig.truncationMode`'s type (core's, which the tokenizer uses), re-exported where it used to live. */
export type { TruncationMode } from "@prefkit/core";
export { type DPOLogpSums, type DPOLossArguments, dpoInputsFor, perTokenMeanLogps } from "./inputs.js";
export { Ln2WarningCallback, type Ln2WarningOptions, type Ln2WarningState } from "./ln2-warning.js";
export { type DPOLossExtras, type DPOLossResult, dpoLoss } from "./loss.js";
export { type DPORun, type DPOTrainerOptions, dpoRun } from "./method.js";
export {
  createDPOLoss,
  DPO_LOSSES,
  type DPOLossInputs,
  type DPOLossOutput,
  type DPOObjectiveConfig,
  dpoObjective,
  type LossRegistryLike,
  lossFactory,
  registerDPOLosses,
} from "./objective.js";
export {
  mixReferenceWeights,
  PolicyWithReference,
  REF_MODEL_FILE,
  REF_MODEL_PREFIX,
  SyncRefModelCallback,
  type SyncTarget,
  syncTarget,
} from "./sync-ref-model.js";
export type { TensorInput } from "./tensor-input.js";
export { DPOTrainer } from "./trainer.js";
