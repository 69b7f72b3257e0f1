/**
 * The native {@link DecoderAccelerator}: the decoder's fast path on the `cpu` backend with the
 * `native-blas` plugin. The whole forward and backward pass of token log-probabilities (embedding →
 * layers → final norm → LM head → selective log-softmax), or of the final hidden states, runs in one
 * native call each way (the addon of `packages/models/native`, on core's GEMM and thread pool), wired
 * into tfjs autodiff with `tf.customGrad`. Same formulas as the tfjs decoder, so the results agree to
 * float rounding; activations and gradient buffers live in memory reused from step to step.
 *
 * It applies when every projection describes itself as a plain projection (`dense`, or `dense16`: a
 * 16-bit stored weight, which it runs from a pack) or LoRA over one (PEFT's update with its dropout: the
 * masks come from the same seeds as the tfjs path), the LM head is plain, and every bias has a slot in the
 * addon's layout (no o_proj/MLP biases); otherwise (a wrapped LM head, a module without `describe()`) it
 * returns undefined and the decoder runs its tfjs ops.
 *
 * Packed weights (modeling/native/packs.ts): a 16-bit weight is packed once for core's GEMM and the pack
 * kept for later steps; under `computeDtype: "bfloat16"` every projection and LM-head weight runs from a
 * bf16 pack (a trainable one repacked in place once per optimizer step). The decoder's
 * `gradientCheckpointing` goes to the addon with each training forward pass. It also decodes for
 * `generate()` (`decoding.ts`: the native decode step over a KV cache, on the same weights array with
 * float32 packs for 16-bit weights).
 * @module
 */
import { type ForwardInputs, type IntMatrix, tf } from "@prefkit/core";
import type { DecoderAccelerator, DecoderModules, TokenLogProbs } from "../decoder/accelerator.js";
import { activeDecoderAddon } from "./addon.js";
import { startNativeDecoding } from "./decoding.js";
import { float32Arrays, isDense16, layoutArrays } from "./layout.js";
import { slotWeights } from "./packs.js";
import { nativeStateOf } from "./state.js";

function intArray(m: IntMatrix | tf.Tensor, rows: number, cols: number): Int32Array | undefined {
  const flat = Array.isArray(m)
    ? Int32Array.from((m as number[][]).flat())
    : Int32Array.from((m as tf.Tensor).dataSync());
  if (flat.length === rows * cols) return flat;
  if (flat.length === cols) {
    // [1, T] broadcast over the batch (positionIds).
    const out = new Int32Array(rows * cols);
    for (let r = 0; r < rows; r++) out.set(flat, r * cols);
    return out;
  }
  return undefined;
}

/**
 * One native decoder call wired into autodiff: per-row `[log p, stats…]` of `labelValues`, or with
 * `labelValues` null the final-normed hidden states `[B·T, hidden]`. Undefined when the native path
 * does not apply.
 */
function nativeDecoderRun(
  decoder: DecoderModules,
  inputs: ForwardInputs,
  b: number,
  t: number,
  labelValues: Int32Array | null,
  withStats: boolean,
): tf.Tensor2D | undefined {
  const active = activeDecoderAddon();
  if (active === undefined) return undefined;
  const { addon, layout } = active;
  const collected = layoutArrays(decoder, layout);
  if (collected === undefined) return undefined;
  const { variables, loraVariables, loraShape, adapters } = collected;
  const state = nativeStateOf(decoder);
  const loraWeights = float32Arrays(loraVariables);
  if (loraWeights === undefined) return undefined;
  const compute = decoder.computeDtype;
  const weights = slotWeights(addon, collected, compute, decoder.packedStorage);
  if (weights === undefined) return undefined;
  const anyAdapter = adapters.some((a) => a !== null);
  const ids = intArray(inputs.inputIds, b, t);
  const mask = inputs.attentionMask !== undefined ? intArray(inputs.attentionMask, b, t) : null;
  let positions: Int32Array | undefined;
  if (inputs.positionIds !== undefined) positions = intArray(inputs.positionIds, b, t);
  else {
    positions = new Int32Array(b * t);
    for (let r = 0; r < b; r++) for (let i = 0; i < t; i++) positions[r * t + i] = i;
  }
  if (ids === undefined || mask === undefined || positions === undefined) return undefined;
  const n = b * t;
  const hiddenMode = labelValues === null;
  const width = hiddenMode ? decoder.config.hiddenSize : withStats ? 4 : 1;

  // Unique trainable variables (the tied embedding appears twice) and their index: base weights first,
  // then the adapters' at variables.length + their slot.
  const trainable: Array<{ variable: tf.Variable; index: number }> = [];
  const seen = new Set<tf.Variable>();
  const head = layout.names.global.indexOf("lm_head");
  [...variables, ...loraVariables].forEach((v, index) => {
    // Hidden states do not use the LM head (an untied lm_head gets no gradient, as in the tfjs path).
    if (hiddenMode && index === head) return;
    // A 16-bit weight is frozen (not a variable).
    if (v === null || isDense16(v)) return;
    if (v.trainable && !seen.has(v)) {
      seen.add(v);
      trainable.push({ variable: v, index });
    }
  });
  const base = variables.length;
  /**
   * This call's dropout multipliers, drawn in the order the tfjs decoder draws them: by layer, then in
   * the order of `decoderLayout().projections`, which layout.h keeps in the order the layer applies them.
   */
  const dropoutMasks = (): Array<Float32Array | null> | null => {
    let any = false;
    const masks = adapters.map((adapter) => {
      const seed = adapter?.nextDropoutSeed();
      if (adapter === null || seed === undefined) return null;
      any = true;
      const inFeatures = adapter.loraA.shape[1]!;
      return tf.tidy(
        () => tf.dropout(tf.ones([n, inFeatures]), adapter.dropout, undefined, seed).dataSync() as Float32Array,
      );
    });
    return any ? masks : null;
  };
  const taped = tf.engine().isTapeOn() && trainable.length > 0;

  // Drawn here, before the op: inside tf.customGrad's forward the tape reads as off, and LoRA's "auto"
  // dropout follows the tape.
  const masks = anyAdapter ? dropoutMasks() : null;
  const run = (save: boolean): { packed: Float32Array; ctx: object } => {
    const ctx = state.take(addon);
    addon.decoderSetMode(ctx, compute, save && decoder.gradientCheckpointing);
    const packed = anyAdapter
      ? addon.decoderForward(
          ctx,
          weights,
          ids,
          mask,
          positions,
          labelValues,
          b,
          t,
          save,
          withStats,
          loraWeights,
          loraShape,
          masks,
        )
      : addon.decoderForward(ctx, weights, ids, mask, positions, labelValues, b, t, save, withStats);
    return { packed, ctx };
  };

  let packedTensor: tf.Tensor2D;
  if (!taped) {
    const { packed, ctx } = run(false);
    state.release(ctx);
    packedTensor = tf.tensor2d(packed, [n, width]);
  } else {
    const op = tf.customGrad((...args: unknown[]) => {
      const { packed, ctx } = run(true);
      void args;
      return {
        value: tf.tensor2d(packed, [n, width]),
        gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
          const dyTensor = Array.isArray(dy) ? dy[0]! : dy;
          const dyAll = dyTensor.dataSync() as Float32Array;
          let dyCol = dyAll;
          if (!hiddenMode && width > 1) {
            dyCol = new Float32Array(n);
            for (let r = 0; r < n; r++) dyCol[r] = dyAll[r * width]!;
          }
          const { set, buffers } = state.gradientBuffers(
            trainable.map((e) => e.index),
            trainable.map((e) => e.variable.size),
          );
          // The tied head shares the embedding's buffer: the addon accumulates both into it.
          const grads: Array<Float32Array | null> = variables.map(() => null);
          const loraGrads: Array<Float32Array | null> = loraVariables.map(() => null);
          trainable.forEach((e, i) => {
            if (e.index < base) grads[e.index] = buffers[i]!;
            else loraGrads[e.index - base] = buffers[i]!;
          });
          try {
            if (anyAdapter) {
              addon.decoderBackward(ctx, weights, dyCol, grads, loraWeights, loraShape, masks, loraGrads);
            } else {
              addon.decoderBackward(ctx, weights, dyCol, grads);
            }
          } finally {
            state.release(ctx);
          }
          const out = trainable.map((e, i) => tf.tensor(buffers[i]!, e.variable.shape, "float32"));
          state.handedOut(set, out);
          return out;
        },
      };
    });
    packedTensor = op(...trainable.map((e) => e.variable)) as tf.Tensor2D;
  }
  return packedTensor;
}

function tokenLogProbs(
  decoder: DecoderModules,
  inputs: ForwardInputs,
  labels: tf.Tensor2D,
  withStats: boolean,
): TokenLogProbs | undefined {
  const [b, t] = labels.shape;
  const n = b * t;
  const packedTensor = nativeDecoderRun(decoder, inputs, b, t, Int32Array.from(labels.dataSync()), withStats);
  if (packedTensor === undefined) return undefined;
  if (!withStats) {
    const logProbs = tf.reshape(packedTensor, [n]) as tf.Tensor1D;
    packedTensor.dispose();
    return { logProbs };
  }
  const logProbs = tf.tidy(() => tf.reshape(tf.slice(packedTensor, [0, 0], [n, 1]), [n]) as tf.Tensor1D);
  const stats = tf.slice(packedTensor, [0, 1], [n, 3]) as tf.Tensor2D;
  packedTensor.dispose();
  return { logProbs, stats };
}

function hiddenStates(decoder: DecoderModules, inputs: ForwardInputs): tf.Tensor3D | undefined {
  const ids = inputs.inputIds;
  const shape = Array.isArray(ids) ? [ids.length, ids.length > 0 ? ids[0]!.length : 0] : (ids as tf.Tensor).shape;
  if (shape.length !== 2 || shape[0]! * shape[1]! === 0) return undefined;
  const [b, t] = shape as [number, number];
  const packed = nativeDecoderRun(decoder, inputs, b, t, null, false);
  if (packed === undefined) return undefined;
  const hidden = tf.reshape(packed, [b, t, decoder.config.hiddenSize]) as tf.Tensor3D;
  packed.dispose();
  return hidden;
}

/** The native addon's fused decoder as the decoder's accelerator (what the model classes pass). */
export const nativeDecoderAccelerator: DecoderAccelerator = {
  name: "native",
  tokenLogProbs,
  hiddenStates,
  startDecoding: startNativeDecoding,
};
