/**
 * `LossScalerHook`: a {@link DynamicLossScaler} on the trainer's gradient seam (core's `GradientHook`).
 * @module
 */
import type { GradientCheck, GradientHook, GradientStepOutcome, tf } from "@prefkit/core";
import type { DynamicLossScaler, LossScalerState } from "./loss-scaler.js";

/**
 * torch's `GradScaler` in a trainer step, as a core `GradientHook`:
 * - `lossScale()`: the loss is multiplied by the current scale inside the gradient tape
 *   (`scaler.scale(loss).backward()`);
 * - `unscaleGradients()`: gradients divided by the scale and checked for inf/NaN (`scaler.unscale_`),
 *   before the trainer measures and clips the norm, so `grad_norm` and clipping see true gradients;
 * - `vetoStep()`: a step with inf/NaN gradients is skipped (`scaler.step`), the reason naming the step and
 *   the scales;
 * - `afterStep()`: back off or grow the scale (`scaler.update()`).
 *
 * The scale is a power of two, so on float32 backends scaling and unscaling are exact: the hook changes
 * nothing there but skipping non-finite steps. Its state (scale, growth tracker) is checkpointed.
 */
export class LossScalerHook implements GradientHook {
  /** Hook name: `"amp.lossScaler"`. */
  readonly name = "amp.lossScaler";
  private foundInf = false;

  /** @param scaler the scaler the hook drives. */
  constructor(readonly scaler: DynamicLossScaler) {}

  /** The scaler's current scale. */
  lossScale(): number {
    return this.scaler.getScale();
  }

  /** Divide by the scale and remember whether any gradient is inf/NaN. */
  unscaleGradients(grads: tf.NamedTensorMap): tf.NamedTensorMap {
    const { grads: unscaled, foundInf } = this.scaler.unscale(grads);
    this.foundInf = foundInf;
    return unscaled;
  }

  /** Veto the step when the unscaled gradients hold inf/NaN. */
  vetoStep(check: GradientCheck): string | undefined {
    if (!this.foundInf) return undefined;
    const scale = this.scaler.getScale();
    return (
      `step ${check.step}: inf/NaN gradients at loss scale ${scale}; skipping the step and backing off to ` +
      `${scale * this.scaler.backoffFactor}`
    );
  }

  /** Back off after inf/NaN, else count towards growth. */
  afterStep(_outcome: GradientStepOutcome): void {
    this.scaler.update(this.foundInf);
    this.foundInf = false;
  }

  /** The scaler's `state_dict`. */
  getState(): LossScalerState {
    return this.scaler.state();
  }

  /** Restore the scale and growth tracker. */
  loadState(state: unknown): void {
    this.scaler.loadState(state as LossScalerState);
  }
}
