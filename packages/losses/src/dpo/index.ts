export {
  DPO_LOSS_TYPES,
  type DPOConfig,
  type DPOLossName,
  type DPOLossType,
  defaultDPOConfig,
  F_DIVERGENCE_TYPES,
  type FDivergenceType,
  type TruncationMode,
  validateDPOConfig,
} from "./config.js";
export { type DPOLogpSums, type DPOLossArguments, dpoInputsFor, perTokenMeanLogps } from "./inputs.js";
export { type DPOLossExtras, type DPOLossOptions, type DPOLossResult, dpoLoss } from "./loss.js";
export {
  createDPOLoss,
  DPO_LOSSES,
  DPO_METRIC_NAMES,
  type DPOLossInputs,
  type DPOLossOutput,
  type LossRegistryLike,
  registerDPOLosses,
} from "./objective.js";
export { registerBuiltinLosses } from "./register.js";
export type { TensorInput } from "./tensor-input.js";
