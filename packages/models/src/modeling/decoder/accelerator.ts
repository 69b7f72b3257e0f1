/**
 * The seam between the decoder and a fused implementation of it. The decoder runs tfjs ops, module by
 * module; a {@link DecoderAccelerator} (the native addon's, `modeling/native/`) may instead run the
 * whole pass in one call when it can, and returns `undefined` when it cannot (another backend, a module
 * it does not understand, an unsupported layout), so that the decoder runs its ops. Whatever runs, the
 * numbers agree to float rounding and the result is differentiable with respect to every trainable
 * variable it reads.
 *
 * An accelerator reads the decoder through {@link DecoderModules} (its config, embedding, layers,
 * final norm and LM head) and asks each projection what it computes (`LinearModule.describe`); it keeps
 * any per-decoder state itself. The decoder gets its accelerator at construction.
 * @module
 */
import type { ForwardInputs, tf } from "@prefkit/core";
import type { DecodingSession } from "../../generation/session.js";
import type { DecoderConfig } from "../config.js";
import type { TokenEmbedding } from "./embedding.js";
import type { DecoderLayer } from "./layer.js";
import type { LinearModule } from "./linear.js";
import type { RMSNorm } from "./rmsnorm.js";

/** What an accelerator reads of a decoder (the `Decoder` class is one). */
export interface DecoderModules {
  /** The decoder's flags. */
  readonly config: DecoderConfig;
  /** `model.embed_tokens` (its `describe()` says whether the table is float32 or 16-bit). */
  readonly embedding: TokenEmbedding;
  /** The blocks, in order. */
  readonly layers: readonly DecoderLayer[];
  /** `model.norm`. */
  readonly norm: RMSNorm;
  /** `lm_head` as currently installed. */
  readonly lmHead: LinearModule;
  /**
   * The products a fused implementation should compute in: `"float32"`, or `"bfloat16"` (operands rounded
   * to bf16, products summed in fp32, as PyTorch's CPU autocast; see `Decoder.computeDtype`).
   */
  readonly computeDtype: DecoderComputeDtype;
  /** Keep only each layer's input for the backward pass and recompute the layer there (`Decoder.gradientCheckpointing`). */
  readonly gradientCheckpointing: boolean;
  /** Drop a bf16 weight's bits once packed, the pack becoming their storage (`Decoder.packedStorage`). */
  readonly packedStorage: boolean;
}

/** What a decoder's matrix products compute in (see `Decoder.computeDtype`). */
export type DecoderComputeDtype = "float32" | "bfloat16";

/** Per-row log-probabilities of the labels, and optionally their statistics. */
export interface TokenLogProbs {
  /** `[B·T]` log p(label). */
  logProbs: tf.Tensor1D;
  /** `[B·T, 3]` mean logit, entropy and argmax == label, when asked for. */
  stats?: tf.Tensor2D;
}

/** A fused implementation of the decoder's forward (and, through `tf.customGrad`, backward) pass. */
export interface DecoderAccelerator {
  /** Short name, for logs. */
  readonly name: string;
  /**
   * Per-row log-probabilities of `labels` `[B, T]` (int32) under the decoder and its LM head, or
   * undefined when this accelerator cannot run this decoder or these inputs.
   */
  tokenLogProbs(
    decoder: DecoderModules,
    inputs: ForwardInputs,
    labels: tf.Tensor2D,
    withStats: boolean,
  ): TokenLogProbs | undefined;
  /**
   * The final-normed hidden states `[B, T, hidden]`, or undefined when this accelerator cannot run this
   * decoder or these inputs.
   */
  hiddenStates(decoder: DecoderModules, inputs: ForwardInputs): tf.Tensor3D | undefined;
  /**
   * A session that decodes for `generate()` (the prompts' prefill, then one token per row per step over
   * a KV cache) for `batch` rows and up to `capacity` columns, or undefined when this accelerator cannot
   * decode this decoder here. Optional: without it, generation runs the decoder's tfjs ops.
   */
  startDecoding?(decoder: DecoderModules, batch: number, capacity: number): DecodingSession | undefined;
}
