export {
  log1mexp,
  type OddsRatioLossResult,
  type ORPOLossOptions,
  type ORPOObjectiveResult,
  oddsRatioLoss,
  orpoObjective,
} from "./loss.js";
export { defaultORPOConfig, ORPO_DEFAULTS, type ORPOConfig, resolveORPOConfig } from "./config.js";
export { orpoLoss } from "./objective.js";
export { ORPOTrainer, type ORPOTrainerOptions, orpoRun } from "./trainer.js";
