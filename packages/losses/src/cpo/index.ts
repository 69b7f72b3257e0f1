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
