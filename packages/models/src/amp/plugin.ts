/**
 * `AmpPlugin`: "mixed precision" as TensorFlow.js allows it (16-bit storage of frozen weights, and a
 * dynamic loss scaler), as a core `Plugin`.
 * @module
 */
import type { CausalLM, Plugin, PluginContext } from "@prefkit/core";
import { DynamicLossScaler, type DynamicLossScalerOptions } from "./loss-scaler.js";
import { LossScalerHook } from "./loss-scaler-hook.js";
import type { HalfPrecisionDtype } from "../modeling/decoder/half-precision.js";
import { enableHalfPrecisionStorage, type HalfPrecisionStorageReport, type HalfPrecisionTarget } from "./storage.js";

/** Injection token of the run's {@link DynamicLossScaler} (registered by {@link AmpPlugin}). */
export const LOSS_SCALER: unique symbol = Symbol("prefkit.LOSS_SCALER");

/** Options of {@link AmpPlugin}. */
export interface AmpPluginOptions {
  /** Storage format of frozen weights. Default `"bfloat16"`. */
  dtype?: HalfPrecisionDtype;
  /** Loss-scaler options (default `enabled: "auto"`: on only on a 16-bit-compute backend). */
  lossScaler?: DynamicLossScalerOptions;
}

/**
 * Stores the final model's frozen projections in 16 bits once every plugin has wrapped it
 * (`PluginContext.onModelReady`, so it composes with `LoraPlugin` in any order), and provides a
 * {@link DynamicLossScaler} under {@link LOSS_SCALER}. When the scaler is enabled, it also adds its
 * {@link LossScalerHook} to the run's gradient hooks, so the generic trainer scales the loss,
 * unscale the gradients, skip inf/NaN steps and update the scale. A disabled scaler (the default on
 * float32 backends) installs no hook: the step is the plain one. Master (trainable) weights stay float32.
 *
 * ```ts no-run
 * plugins: [new LoraPlugin({ targetModules: "all-linear" }), new AmpPlugin({ dtype: "bfloat16" })]
 * ```
 */
export class AmpPlugin implements Plugin {
  /** Plugin name: `"amp"`. */
  readonly name = "amp";
  /** Storage format. */
  readonly dtype: HalfPrecisionDtype;
  /** The run's loss scaler. */
  readonly lossScaler: DynamicLossScaler;
  /** The trainer hook driving {@link AmpPlugin.lossScaler}, or undefined when the scaler is disabled. */
  readonly gradientHook: LossScalerHook | undefined;
  /** What the last `onModelLoaded` converted. */
  report: HalfPrecisionStorageReport | undefined;

  /** @param options storage format and loss-scaler options. */
  constructor(options: AmpPluginOptions = {}) {
    this.dtype = options.dtype ?? "bfloat16";
    this.lossScaler = new DynamicLossScaler(options.lossScaler);
    this.gradientHook = this.lossScaler.enabled ? new LossScalerHook(this.lossScaler) : undefined;
  }

  /**
   * Provide the loss scaler under {@link LOSS_SCALER}, add its gradient hook when enabled, and convert the
   * final model's frozen weights once every plugin wrapped it.
   */
  register(context: PluginContext): void {
    context.provide(LOSS_SCALER, this.lossScaler);
    if (this.gradientHook) context.addGradientHook(this.gradientHook);
    context.onModelReady((model) => this.onModelLoaded(model));
  }

  /** Store the final model's frozen projections in 16 bits (nothing when every weight is trainable). */
  onModelLoaded(model: CausalLM): void {
    this.report = enableHalfPrecisionStorage(model as unknown as HalfPrecisionTarget, { dtype: this.dtype });
  }
}
