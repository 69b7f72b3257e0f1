export {
  DPO_DEFAULTS,
  DPO_LOSS_TYPES,
  type DPOConfig,
  type DPOConfigInput,
  type DPOLossName,
  type DPOLossType,
  defaultDPOConfig,
  F_DIVERGENCE_TYPES,
  type FDivergenceType,
  resolveDPOConfig,
  type TruncationMode,
  validateDPOConfig,
} from "./config.js";
export { type DPOLogpSums, type DPOLossArguments, dpoInputsFor, perTokenMeanLogps } from "./inputs.js";
export { Ln2WarningCallback, type Ln2WarningOptions, type Ln2WarningState } from "./ln2-warning.js";
export { type DPOLossExtras, type DPOLossOptions, type DPOLossResult, dpoLoss } from "./loss.js";
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
export type { TensorInput } from "./tensor-input.js";
export { DPOTrainer } from "./trainer.js";
