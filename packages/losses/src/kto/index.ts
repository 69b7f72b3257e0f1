export {
  KTO_LOSS_TYPES,
  type KTOKLLogps,
  type KTOLossOptions,
  type KTOLossResult,
  type KTOLossType,
  ktoKLEstimate,
  ktoLoss,
  validateKTOLossOptions,
} from "./loss.js";
export { defaultKTOConfig, KTO_DEFAULTS, type KTOConfig, resolveKTOConfig } from "./config.js";
export { type KTORun, type KTOTrainerOptions, ktoRun } from "./method.js";
export { createKTOLoss, type UnpairedLoss } from "./objective.js";
export { collateKTO, type KTOBatch, type KTORow, type Padded, UnpairedTask } from "./task.js";
export { KTOTrainer } from "./trainer.js";
