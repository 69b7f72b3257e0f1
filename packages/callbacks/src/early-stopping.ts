/**
 * `EarlyStoppingCallback`: stop when an evaluation metric stops improving.
 * @module
 */
import {
  type Callback,
  ConfigError,
  type EvaluatePayload,
  type TrainerControl,
  type TrainerState,
  type TrainingArgs,
} from "@prefkit/core";

/** Options of {@link EarlyStoppingCallback}. */
export interface EarlyStoppingOptions {
  /** Evaluations without improvement before training stops. Default 1 (transformers' `early_stopping_patience`). */
  patience?: number;
  /** Minimum change that counts as an improvement. Default 0 (transformers' `early_stopping_threshold`). */
  threshold?: number;
  /** Metric to watch, with or without the `eval_` prefix. Default: `args.metricForBestModel`, else `"loss"`. */
  metric?: string;
  /** Whether larger is better. Default: `args.greaterIsBetter`, else false for names ending in `loss`, true otherwise. */
  greaterIsBetter?: boolean;
}

/** What {@link EarlyStoppingCallback} carries across a resume. */
export interface EarlyStoppingState {
  /** Best value seen, or null. */
  best: number | null;
  /** Evaluations since the last improvement. */
  badEvaluations: number;
  /** Step at which it stopped training, or null. */
  stoppedAtStep: number | null;
}

/**
 * transformers' `EarlyStoppingCallback`: after each evaluation, compare the watched metric with the
 * best so far; an improvement must beat it by more than `threshold`. After `patience` evaluations
 * without one it sets `control.shouldTrainingStop`. Its counter survives a resume
 * (`getState`/`loadState`).
 * @throws ConfigError (from `onEvaluate`) when the evaluation lacks the metric, listing what it had.
 */
export class EarlyStoppingCallback implements Callback {
  /** Callback name (key in `state.statefulCallbacks`). */
  readonly name = "EarlyStoppingCallback";
  /** Counter and best value. */
  state: EarlyStoppingState = { best: null, badEvaluations: 0, stoppedAtStep: null };
  private readonly options: EarlyStoppingOptions;

  /** @param options patience, threshold and the metric. */
  constructor(options: EarlyStoppingOptions = {}) {
    const patience = options.patience ?? 1;
    if (!Number.isInteger(patience) || patience < 1) {
      throw new ConfigError(`must be an integer >= 1, got ${JSON.stringify(patience)}`, { field: "patience" });
    }
    const threshold = options.threshold ?? 0;
    if (!(threshold >= 0)) {
      throw new ConfigError(`must be a number >= 0, got ${JSON.stringify(threshold)}`, { field: "threshold" });
    }
    this.options = { ...options, patience, threshold };
  }

  /** Compares the metric with the best so far and stops training when patience runs out. */
  onEvaluate(
    args: Readonly<TrainingArgs>,
    state: Readonly<TrainerState>,
    control: TrainerControl,
    payload: EvaluatePayload,
  ): void {
    const name = this.options.metric ?? args.metricForBestModel ?? "loss";
    const key = name.startsWith("eval_") ? name : `eval_${name}`;
    const value = payload.metrics[key];
    if (value === undefined) {
      throw new ConfigError(
        `EarlyStoppingCallback: metric "${key}" not in the evaluation (${Object.keys(payload.metrics).join(", ")})`,
        { field: "metric" },
      );
    }
    const greater = this.options.greaterIsBetter ?? args.greaterIsBetter ?? !name.endsWith("loss");
    const best = this.state.best;
    const improved =
      Number.isFinite(value) &&
      (best === null || ((greater ? value > best : value < best) && Math.abs(value - best) > this.options.threshold!));
    if (improved) {
      this.state.best = value;
      this.state.badEvaluations = 0;
    } else {
      this.state.badEvaluations += 1;
    }
    if (this.state.badEvaluations >= this.options.patience!) {
      control.shouldTrainingStop = true;
      this.state.stoppedAtStep = state.globalStep;
    }
  }

  /** The counter and best value, for `trainer_state.json`. */
  getState(): EarlyStoppingState {
    return { ...this.state };
  }

  /** Restore what {@link EarlyStoppingCallback.getState} returned. */
  loadState(state: unknown): void {
    this.state = { ...this.state, ...(state as Partial<EarlyStoppingState>) };
  }
}
