/**
 * Running sums of the training loss and metrics between two logs: what `loss` and every metric of a
 * training log average over (transformers logs the mean since the last log), except a step's `latest`
 * metrics (counters such as PPO's `episode`), which are reported as of the window's last step.
 * @module
 */
import type { StepResult } from "./gradient-step.js";

/** Sums of the steps since the last training log. */
export class LogWindow {
  private lossSum = 0;
  private steps = 0;
  private metricSums = new Map<string, { sum: number; count: number }>();
  /** Gradient norm of the last step (logged as is, as transformers does). */
  lastGradNorm = Number.NaN;

  /** Add one optimizer step. */
  add(result: StepResult): void {
    this.lossSum += result.loss;
    this.steps += 1;
    this.lastGradNorm = result.gradNorm;
    const latest = new Set(result.latest);
    for (const [k, v] of Object.entries(result.metrics)) {
      const acc = (!latest.has(k) && this.metricSums.get(k)) || { sum: 0, count: 0 };
      acc.sum += v;
      acc.count += 1;
      this.metricSums.set(k, acc);
    }
  }

  /** True when no step was added since the last {@link LogWindow.take}. */
  get empty(): boolean {
    return this.steps === 0;
  }

  /** The window's mean loss and metric means (the gradient norm is {@link LogWindow.lastGradNorm}); resets the window. */
  take(): { loss: number; metrics: Record<string, number> } {
    const metrics: Record<string, number> = {};
    for (const [k, { sum, count }] of this.metricSums) metrics[k] = sum / count;
    const loss = this.lossSum / this.steps;
    this.reset();
    return { loss, metrics };
  }

  /** Forget the sums. */
  reset(): void {
    this.lossSum = 0;
    this.steps = 0;
    this.metricSums = new Map();
  }
}
