/**
 * `AmpPlugin`: mixed precision as a core `Plugin`: 16-bit storage of frozen weights, bf16 compute in the
 * fused decoder (PyTorch's CPU autocast), and a dynamic loss scaler.
 * @module
 */
import { type CausalLM, ConfigError, type Plugin, type PluginContext } from "@prefkit/core";
import type { DecoderComputeDtype } from "../modeling/decoder/accelerator.js";
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
  /**
   * What the matrix products compute in. `"float32"` (default): storage only. `"bfloat16"`: as PyTorch's
   * `torch.autocast("cpu", dtype=torch.bfloat16)`, the fused decoder's projections, LoRA updates and LM
   * head take bf16 operands (activations rounded to bf16 as they are packed) and sum the exact products
   * in fp32; norms, softmax, attention, log-probs, losses, master weights and AdamW state stay fp32 (see the
   * LoRA and AMP guide for the error bound). Needs `dtype: "bfloat16"`: there is no fp16 arithmetic here,
   * so fp16 stays storage-only.
   */
  compute?: DecoderComputeDtype;
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
 * With `compute: "bfloat16"` the fused decoder's products run in bf16 (PyTorch's CPU autocast).
 *
 * ```ts no-run
 * plugins: [new LoraPlugin({ targetModules: "all-linear" }), new AmpPlugin({ compute: "bfloat16" })]
 * ```
 */
export class AmpPlugin implements Plugin {
  /** Plugin name: `"amp"`. */
  readonly name = "amp";
  /** Storage format. */
  readonly dtype: HalfPrecisionDtype;
  /** What the products compute in (see {@link AmpPluginOptions.compute}). */
  readonly compute: DecoderComputeDtype;
  /** The run's loss scaler. */
  readonly lossScaler: DynamicLossScaler;
  /** The trainer hook driving {@link AmpPlugin.lossScaler}, or undefined when the scaler is disabled. */
  readonly gradientHook: LossScalerHook | undefined;
  /** What the last `onModelLoaded` converted. */
  report: HalfPrecisionStorageReport | undefined;

  /**
   * @param options storage format, compute dtype and loss-scaler options.
   * @throws ConfigError for an unknown `compute`, or `compute: "bfloat16"` with `dtype: "float16"`.
   */
  constructor(options: AmpPluginOptions = {}) {
    this.dtype = options.dtype ?? "bfloat16";
    this.compute = options.compute ?? "float32";
    if (this.compute !== "float32" && this.compute !== "bfloat16") {
      throw new ConfigError(`must be "float32" or "bfloat16", got ${JSON.stringify(this.compute)}`, {
        field: "compute",
      });
    }
    if (this.compute === "bfloat16" && this.dtype !== "bfloat16") {
      throw new ConfigError('"bfloat16" needs dtype "bfloat16": fp16 has no arithmetic here and stays storage-only', {
        field: "compute",
      });
    }
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

  /**
   * Store the final model's frozen projections in 16 bits (nothing when every weight is trainable), and with
   * `compute: "bfloat16"` switch its fused decoder to bf16 products.
   * @throws ConfigError when bf16 compute is asked of a model without a compute dtype (not a prefkit model).
   */
  onModelLoaded(model: CausalLM): void {
    this.report = enableHalfPrecisionStorage(model as unknown as HalfPrecisionTarget, { dtype: this.dtype });
    if (this.compute === "float32") return;
    const target = model as Partial<{ computeDtype: DecoderComputeDtype }>;
    if (!("computeDtype" in model)) {
      throw new ConfigError("bf16 compute needs a prefkit model (one with a computeDtype)", { field: "compute" });
    }
    target.computeDtype = this.compute;
  }
}
