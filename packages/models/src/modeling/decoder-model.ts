/**
 * What the model classes over the one decoder share: HF's gradient-checkpointing switch and the compute
 * dtype of the fused decoder's products.
 * @module
 */
import { ConfigError, type GradientCheckpointingModel } from "@prefkit/core";
import type { DecoderComputeDtype } from "./decoder/accelerator.js";
import type { Decoder } from "./decoder/decoder.js";

/** A model whose body is a {@link Decoder} (`PreTrainedModelForCausalLM`, `PreTrainedModelForSequenceClassification`). */
export abstract class DecoderModel implements GradientCheckpointingModel {
  /** The decoder body. */
  abstract readonly decoder: Decoder;

  /**
   * HF's `gradient_checkpointing_enable()`: training forward passes of the fused decoder keep only each
   * layer's input, and the backward pass recomputes the layer (see `Decoder.gradientCheckpointing`). The
   * trainer calls it when `gradientCheckpointing` is set.
   */
  gradientCheckpointingEnable(): void {
    this.decoder.gradientCheckpointing = true;
  }

  /** Keep every layer's activations again (the default). */
  gradientCheckpointingDisable(): void {
    this.decoder.gradientCheckpointing = false;
  }

  /** Whether gradient checkpointing is on. */
  get isGradientCheckpointing(): boolean {
    return this.decoder.gradientCheckpointing;
  }

  /**
   * What the fused decoder's matrix products compute in: `"float32"` (default) or `"bfloat16"` (PyTorch's
   * CPU autocast; see `Decoder.computeDtype`). AMP's `compute: "bfloat16"` sets it.
   */
  get computeDtype(): DecoderComputeDtype {
    return this.decoder.computeDtype;
  }

  set computeDtype(dtype: DecoderComputeDtype) {
    if (dtype !== "float32" && dtype !== "bfloat16") {
      throw new ConfigError(`must be "float32" or "bfloat16", got ${JSON.stringify(dtype)}`, { field: "computeDtype" });
    }
    this.decoder.computeDtype = dtype;
  }
}
