export {
  CPO_LOSS_TYPES,
  type CPOLossOptions,
  type CPOLossResult,
  type CPOLossType,
  type CPOObjectiveOptions,
  type CPOObjectiveResult,
  cpoLoss,
  cpoObjective,
  validateCPOLossOptions,
} from "./loss.js";
export { CPO_DEFAULTS, type CPOConfig, defaultCPOConfig, isCPOLossType, resolveCPOConfig } from "./config.js";
export { cpoLossPlugin } from "./objective.js";
export { CPOTrainer, type CPOTrainerOptions, cpoRun } from "./trainer.js";
