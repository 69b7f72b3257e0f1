import { ConfigError } from "../errors/index.js";
import type { TrainerState } from "../interfaces/callback.js";
import type { TrainingArgs } from "../interfaces/trainer.js";

/**
 * Track `metricForBestModel` after an evaluation, as transformers' Trainer: the best value and its step go into
 * `state` when `metrics` improves on it (greater is better unless the name ends in `loss` or
 * `greaterIsBetter` says otherwise).
 * @throws ConfigError when the metric is not among the evaluation's.
 */
export function updateBestMetric(
  state: TrainerState,
  args: Pick<TrainingArgs, "metricForBestModel" | "greaterIsBetter">,
  metrics: Record<string, number>,
  prefix: string,
): void {
  const name = args.metricForBestModel;
  if (!name) return;
  const key = name.startsWith(`${prefix}_`) ? name : `${prefix}_${name}`;
  const value = metrics[key];
  if (value === undefined) {
    throw new ConfigError(`metric "${key}" not found; evaluation gave ${Object.keys(metrics).join(", ")}`, {
      field: "metricForBestModel",
    });
  }
  const greater = args.greaterIsBetter ?? !name.endsWith("loss");
  const best = state.bestMetric;
  if (best === null || (greater ? value > best : value < best)) {
    state.bestMetric = value;
    state.bestGlobalStep = state.globalStep;
  }
}
