export {
  log1mexp,
  type OddsRatioLossResult,
  type ORPOLossOptions,
  type ORPOObjectiveResult,
  oddsRatioLoss,
  orpoObjective,
} from "./loss.js";
