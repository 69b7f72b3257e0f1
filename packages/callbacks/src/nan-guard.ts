/**
 * `NanGuardCallback`: stop (or warn) when the loss or the gradient norm is not finite.
 * @module
 */
import type { Callback, LogPayload, TrainerControl, TrainerState, TrainingArgs } from "@prefkit/core";

/** Options of {@link NanGuardCallback}. */
export interface NanGuardOptions {
  /**
   * `"stop"` (default): stop training after the step and keep the message in
   * {@link NanGuardCallback.events}. `"warn"`: report and go on training.
   */
  action?: "stop" | "warn";
  /** Logged values to check. Default `["loss", "grad_norm"]` (plus their `eval_` forms when logged). */
  metrics?: readonly string[];
  /** Where the message goes. Default `console.error`. */
  report?: (message: string) => void;
}

/** One non-finite value the guard saw. */
export interface NanGuardEvent {
  /** Optimizer step of the log event. */
  step: number;
  /** Metric name (TRL name). */
  metric: string;
  /** The value (`NaN`, `Infinity` or `-Infinity`). */
  value: number;
  /** The message that was reported. */
  message: string;
}

/**
 * Watches every log event for a non-finite `loss` or `grad_norm` and reports it with the step and
 * the metric, e.g. `NanGuardCallback: step 12: loss is NaN (grad_norm=Infinity); stopping training`.
 * With `action: "stop"` it sets `control.shouldTrainingStop`, so the run ends after the current step
 * (the checkpoint the default flow saves at the end has the diverged weights: resume from an earlier one).
 *
 * The values checked are the trainer's averages since the last log, so one bad step taints its whole
 * logging window; set `loggingSteps: 1` to catch the exact step. The guard sees a step only after its
 * update was applied, so it cannot undo it, which is why there is no "skip" action.
 */
export class NanGuardCallback implements Callback {
  /** Callback name. */
  readonly name = "NanGuardCallback";
  /** Every non-finite value seen, in order. */
  readonly events: NanGuardEvent[] = [];
  private readonly action: "stop" | "warn";
  private readonly metrics: readonly string[];
  private readonly report: (message: string) => void;

  /** @param options action, metrics and where messages go. */
  constructor(options: NanGuardOptions = {}) {
    this.action = options.action ?? "stop";
    this.metrics = options.metrics ?? ["loss", "grad_norm"];
    this.report = options.report ?? ((m) => console.error(m));
  }

  /** True once a non-finite value was seen. */
  get triggered(): boolean {
    return this.events.length > 0;
  }

  /** Checks the logged values. */
  onLog(
    _args: Readonly<TrainingArgs>,
    state: Readonly<TrainerState>,
    control: TrainerControl,
    payload: LogPayload,
  ): void {
    const logs = payload.logs;
    const bad = this.metrics
      .flatMap((m) => [m, `eval_${m}`])
      .filter((m) => logs[m] !== undefined && !Number.isFinite(logs[m]!));
    if (bad.length === 0) return;
    const first = bad[0]!;
    const others = this.metrics.filter((m) => m !== first && logs[m] !== undefined).map((m) => `${m}=${logs[m]}`);
    const suffix = others.length > 0 ? ` (${others.join(", ")})` : "";
    const then = this.action === "stop" ? "stopping training" : "continuing";
    const message = `NanGuardCallback: step ${state.globalStep}: ${first} is ${logs[first]}${suffix}; ${then}`;
    for (const m of bad) this.events.push({ step: state.globalStep, metric: m, value: logs[m]!, message });
    this.report(message);
    if (this.action === "stop") control.shouldTrainingStop = true;
  }
}
