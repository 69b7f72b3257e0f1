/**
 * `NanGuardCallback`: stop, warn, or skip the step when the loss or the gradient norm is not finite.
 * @module
 */
import type {
  Callback,
  GradientCheck,
  GradientHook,
  LogPayload,
  TrainerControl,
  TrainerState,
  TrainingArgs,
} from "@prefkit/core";

/** Options of {@link NanGuardCallback}. */
export interface NanGuardOptions {
  /**
   * `"stop"` (default): stop training after the step and keep the message in
   * {@link NanGuardCallback.events}. `"warn"`: report a non-finite logged value and go on (the trainer still
   * never applies a non-finite training step: it ends the run). `"skip"`: check every step BEFORE its update
   * (through the trainer's gradient hook) and skip a step whose loss or gradient norm is not finite, so the
   * weights and optimizer state stay as they were; training goes on.
   */
  action?: "stop" | "warn" | "skip";
  /** Logged values to check. Default `["loss", "grad_norm"]` (plus their `eval_` forms when logged). */
  metrics?: readonly string[];
  /** Where the message goes. Default `console.error`. */
  report?: (message: string) => void;
}

/** One non-finite value the guard saw. */
export interface NanGuardEvent {
  /** `"skip"` when the step was vetoed before its update (`action: "skip"`); absent for log-event findings. */
  action?: "skip";
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
 * Watches every log event for a non-finite `loss` or `grad_norm` (and their `eval_` forms) and reports it
 * with the step and the metric, e.g. `NanGuardCallback: step 12: eval_loss is NaN; stopping training`.
 * With `action: "stop"` it sets `control.shouldTrainingStop`, so the run ends after the current step.
 *
 * The trainer itself checks every optimizer step (`BaseTrainer.finiteGuard`): a training step whose loss or
 * gradient norm is not finite is never applied, the run ends with a `DivergenceError` naming the step, and
 * nothing is saved after it. So with `"stop"`/`"warn"` this callback is what reports non-finite logged
 * values (evaluation metrics included); `"warn"` cannot let a non-finite training step through.
 *
 * With `action: "skip"` the guard is a core `GradientHook` ({@link NanGuardCallback.gradientHook}): the
 * trainer asks it about every optimizer step after back-propagation and before `applyGradients`, with the
 * step's loss and (unscaled) gradient norm. A non-finite one skips the step (no update, no scheduler step,
 * counted in the logged `skipped_steps`) with e.g.
 * `NanGuardCallback: step 3: loss is NaN (grad_norm=NaN); skipping the step (weights unchanged)`.
 * Under AMP, the loss scaler's own veto (an overflow it backs off from) comes first and is not reported.
 */
export class NanGuardCallback implements Callback {
  /** Callback name. */
  readonly name = "NanGuardCallback";
  /** Every non-finite value seen, in order. */
  readonly events: NanGuardEvent[] = [];
  /** The trainer hook of `action: "skip"` (undefined for the other actions). */
  readonly gradientHook: GradientHook | undefined;
  private readonly action: "stop" | "warn" | "skip";
  private readonly metrics: readonly string[];
  private readonly report: (message: string) => void;

  /** @param options action, metrics and where messages go. */
  constructor(options: NanGuardOptions = {}) {
    this.action = options.action ?? "stop";
    this.metrics = options.metrics ?? ["loss", "grad_norm"];
    this.report = options.report ?? ((m) => console.error(m));
    this.gradientHook =
      this.action === "skip" ? { name: this.name, vetoStep: (check) => this.vetoStep(check) } : undefined;
  }

  private vetoStep(check: GradientCheck): string | undefined {
    const values: Record<string, number> = { loss: check.loss, grad_norm: check.gradNorm };
    const bad = this.metrics.filter((m) => values[m] !== undefined && !Number.isFinite(values[m]!));
    if (bad.length === 0) return undefined;
    const first = bad[0]!;
    const others = this.metrics.filter((m) => m !== first && values[m] !== undefined).map((m) => `${m}=${values[m]}`);
    const suffix = others.length > 0 ? ` (${others.join(", ")})` : "";
    const message = `NanGuardCallback: step ${check.step}: ${first} is ${values[first]}${suffix}; skipping the step (weights unchanged)`;
    for (const m of bad) this.events.push({ step: check.step, metric: m, value: values[m]!, message, action: "skip" });
    this.report(message);
    return message;
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
    if (bad.length === 0 || this.action === "skip") return;
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
