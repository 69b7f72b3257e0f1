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
