/**
 * What the native accelerator keeps per decoder: its addon contexts (activations between a forward
 * pass and its backward pass) and pooled gradient buffers, reused from step to step.
 * @module
 */
import { tf } from "@prefkit/core";
import type { DecoderConfig } from "../config.js";
import type { DecoderModules } from "../decoder/accelerator.js";
import { computeInverseFrequencies } from "../decoder/rope.js";
import type { DecoderAddon } from "./addon.js";

/** Gradient buffers by weight index, and the data ids of the tensors last made over them. */
interface GradientSet {
  buffers: Map<number, Float32Array>;
  handedOut: tf.DataId[];
}

/** Gradient-buffer sets kept per decoder (two cover gradient accumulation). */
const MAX_GRADIENT_SETS = 2;

/** A native decode session and the logits buffer its calls write into, both reused from generation to generation. */
export interface DecodeHandle {
  /** The addon's decode session (its KV cache and scratch). */
  session: object;
  /** `[batch, vocab]` logits of the last call (grown as needed). */
  logits: Float32Array;
}

/** Native contexts and reusable gradient buffers of one decoder. */
export class NativeDecoderState {
  private readonly free: object[] = [];
  private readonly freeDecoders: DecodeHandle[] = [];
  /** Up to {@link MAX_GRADIENT_SETS} reusable sets of gradient buffers and the data ids handed out over each. */
  private readonly gradientSets: GradientSet[] = [];
  private dims: Float64Array;
  private invFreq: Float32Array;

  /** Build the state for one decoder configuration. */
  constructor(config: DecoderConfig) {
    this.dims = new Float64Array([
      config.numLayers,
      config.hiddenSize,
      config.numHeads,
      config.numKvHeads,
      config.headDim,
      config.intermediateSize,
      config.vocabSize,
      config.rmsNormEps,
      config.attentionBias ? 1 : 0,
      config.qkNorm ? 1 : 0,
      config.slidingWindow ?? -1,
      config.slidingWindowStartLayer,
    ]);
    this.invFreq = computeInverseFrequencies(config.headDim, config.ropeTheta, config.ropeScaling);
  }

  /**
   * A context for one forward pass (a fresh one when all are waiting for their backward).
   * @internal
   */
  take(addon: DecoderAddon): object {
    return this.free.pop() ?? addon.decoderCreate(this.dims, this.invFreq);
  }

  /**
   * A decode session for one generation (a fresh one when all are in use), with a logits buffer of at
   * least `logits` floats.
   * @internal
   */
  takeDecoder(addon: DecoderAddon, logits: number): DecodeHandle {
    let handle = this.freeDecoders.pop();
    if (handle === undefined) {
      const ctx = this.take(addon);
      handle = { session: addon.decodeCreate(ctx), logits: new Float32Array(0) };
      this.release(ctx);
    }
    if (handle.logits.length < logits) handle.logits = new Float32Array(logits);
    return handle;
  }

  /**
   * Return a decode session after its generation, for the next one (its buffers stay allocated).
   * @internal
   */
  releaseDecoder(handle: DecodeHandle): void {
    this.freeDecoders.push(handle);
  }

  /**
   * Return a context after its backward pass (or after a forward that saved nothing).
   * @internal
   */
  release(ctx: object): void {
    this.free.push(ctx);
  }

  /**
   * A set of gradient buffers for the weights at `indices`: a pooled set none of whose data is held by a
   * live tensor any more (the cpu backend still has the data id while any tensor, e.g. a `tf.clone`,
   * shares it), else a new one. Pooling two sets lets gradient accumulation (the previous micro-batch's
   * gradients still alive) run without fresh allocations; a live tensor's data is never overwritten.
   * @internal
   */
  gradientBuffers(indices: number[], sizes: number[]): { set: GradientSet; buffers: Float32Array[] } {
    const data = (tf.backend() as unknown as { data: { has(id: tf.DataId): boolean } }).data;
    let set = this.gradientSets.find((g) => !g.handedOut.some((id) => data.has(id)));
    if (set === undefined) {
      set = { buffers: new Map(), handedOut: [] };
      if (this.gradientSets.length < MAX_GRADIENT_SETS) this.gradientSets.push(set);
    }
    const buffers = indices.map((index, i) => {
      let buf = set.buffers.get(index);
      if (buf === undefined || buf.length !== sizes[i]) {
        buf = new Float32Array(sizes[i]!);
        set.buffers.set(index, buf);
      }
      return buf;
    });
    return { set, buffers };
  }

  /**
   * Remember the tensors handed out over a set's buffers.
   * @internal
   */
  handedOut(set: GradientSet, grads: tf.Tensor[]): void {
    set.handedOut = grads.map((g) => g.dataId);
  }
}

const states = new WeakMap<DecoderModules, NativeDecoderState>();

/** The state of `decoder` (created on first use; it goes with the decoder). */
export function nativeStateOf(decoder: DecoderModules): NativeDecoderState {
  let state = states.get(decoder);
  if (state === undefined) {
    state = new NativeDecoderState(decoder.config);
    states.set(decoder, state);
  }
  return state;
}
