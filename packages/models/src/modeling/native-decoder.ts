/**
 * The decoder's fast path on the `cpu` backend with the `native-blas` plugin: the whole forward
 * and backward pass of token log-probabilities (embedding → layers → final norm → LM head →
 * selective log-softmax) in one native call each way (`packages/core/native/src/decoder.cc`),
 * wired into tfjs autodiff with `tf.customGrad`. Same formulas as the tfjs decoder, so the
 * results agree to float rounding; activations and the gradient buffers live in memory that is
 * reused from step to step instead of being allocated per op.
 *
 * It applies when every projection is the stock {@link Linear} or a LoRA adapter over one (PEFT's
 * update with its dropout: the masks come from the same seeds as the tfjs path), the LM head is
 * plain, weights are float32, and the family's layout is supported (no o_proj/MLP biases);
 * otherwise (AMP's 16-bit storage, a wrapped LM head) {@link nativeTokenLogProbs} returns
 * undefined and the caller runs the tfjs ops.
 * @module
 */
import { activeNativeAddon, type ForwardInputs, type IntMatrix, tf } from "@prefkit/core";
import type { DecoderConfig } from "./config.js";
import { computeInverseFrequencies } from "./decoder/rope.js";
import type { AttentionModules } from "./decoder/attention.js";
import type { MLPModules } from "./decoder/mlp.js";
import type { RMSNorm } from "./decoder/rmsnorm.js";
import { LoraLinear } from "../lora/layer.js";
import { Linear, type LinearModule } from "./decoder/linear.js";

/**
 * What the native path reads of a decoder: its flags, weights and switch (structurally `Decoder`, which calls
 * into this module; naming the class here would make the two modules import each other).
 */
export interface FusableDecoder {
  /** The decoder's flags. */
  readonly config: DecoderConfig;
  /** False forces the tfjs ops. */
  readonly useNativeDecoder: boolean;
  /** `model.embed_tokens.weight`. */
  readonly embedTokens: tf.Variable;
  /** `model.norm`. */
  readonly norm: RMSNorm;
  /** `lm_head`. */
  readonly lmHead: LinearModule;
  /** The blocks. */
  readonly layers: ReadonlyArray<{
    readonly inputNorm: RMSNorm;
    readonly postAttentionNorm: RMSNorm;
    readonly selfAttn: { readonly modules: AttentionModules };
    readonly mlp: { readonly modules: MLPModules };
  }>;
}

/** The addon's decoder functions (see decoder.cc). */
interface DecoderAddon {
  decoderCreate(dims: Float64Array, invFreq: Float32Array): object;
  decoderForward(
    ctx: object,
    weights: Array<Float32Array | null>,
    ids: Int32Array,
    mask: Int32Array | null,
    positions: Int32Array,
    labels: Int32Array | null,
    batch: number,
    seqLen: number,
    save: boolean,
    withStats: boolean,
    loraWeights?: Array<Float32Array | null> | null,
    loraShape?: Float64Array | null,
    loraMasks?: Array<Float32Array | null> | null,
  ): Float32Array;
  decoderBackward(
    ctx: object,
    weights: Array<Float32Array | null>,
    dy: Float32Array,
    grads: Array<Float32Array | null>,
    loraWeights?: Array<Float32Array | null> | null,
    loraShape?: Float64Array | null,
    loraMasks?: Array<Float32Array | null> | null,
    loraGrads?: Array<Float32Array | null> | null,
  ): void;
}

/** Gradient buffers by weight index, and the data ids of the tensors last made over them. */
interface GradientSet {
  buffers: Map<number, Float32Array>;
  handedOut: tf.DataId[];
}

/** Gradient-buffer sets kept per decoder (two cover gradient accumulation). */
const MAX_GRADIENT_SETS = 2;

/** Native contexts and reusable gradient buffers of one decoder. */
export class NativeDecoderState {
  private readonly free: object[] = [];
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

function decoderAddon(): DecoderAddon | undefined {
  const addon = activeNativeAddon() as unknown as Partial<DecoderAddon> | undefined;
  return addon !== undefined && typeof addon.decoderForward === "function" ? (addon as DecoderAddon) : undefined;
}

function float32(t: tf.Tensor): Float32Array | undefined {
  if (t.dtype !== "float32") return undefined;
  const values = t.dataSync();
  return values instanceof Float32Array ? values : undefined;
}

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

/** The decoder's variables in the addon's layout, with its LoRA adapters. */
interface Collected {
  /** `[embed, finalNorm, head]` then 14 per layer (null for absent biases / q-k norms). */
  variables: (tf.Variable | null)[];
  /** Per layer and projection (q, k, v, o, gate, up, down): `[lora_A, lora_B]`, null when not adapted. */
  loraVariables: (tf.Variable | null)[];
  /** Per layer and projection: `[scale, rank]` (rank 0 when not adapted). */
  loraShape: Float64Array;
  /** Per layer and projection: the active adapter, or null. */
  adapters: (LoraLinear | null)[];
}

/** The plain projection under `m` and its active adapter, or undefined when `m` is something else. */
function unwrap(m: LinearModule): { base: Linear; adapter: LoraLinear | null } | undefined {
  if (m instanceof Linear) return { base: m, adapter: null };
  if (m instanceof LoraLinear && m.base instanceof Linear) return { base: m.base, adapter: m.active ? m : null };
  return undefined;
}

/** The decoder's weights in the addon's layout, or undefined when a slot or the layout is unsupported. */
function collectWeights(decoder: FusableDecoder): Collected | undefined {
  if (!decoder.useNativeDecoder) return undefined;
  const c = decoder.config;
  if (c.attentionOutputBias || c.mlpBias) return undefined;
  const head = decoder.lmHead;
  if (!(head instanceof Linear) || head.bias !== null) return undefined;
  const variables: (tf.Variable | null)[] = [decoder.embedTokens, decoder.norm.weight, head.weight];
  const loraVariables: (tf.Variable | null)[] = [];
  const adapters: (LoraLinear | null)[] = [];
  const loraShape = new Float64Array(decoder.layers.length * 14);
  for (const layer of decoder.layers) {
    const a = layer.selfAttn.modules;
    const m = layer.mlp.modules;
    const parts = [a.qProj, a.kProj, a.vProj, a.oProj, m.gateProj, m.upProj, m.downProj].map(unwrap);
    if (parts.some((p) => p === undefined)) return undefined;
    const [q, k, v, o, g, u, d] = parts.map((p) => p!.base);
    if (o!.bias || g!.bias || u!.bias || d!.bias) return undefined;
    if (c.attentionBias !== (q!.bias !== null && k!.bias !== null && v!.bias !== null)) return undefined;
    variables.push(
      layer.inputNorm.weight,
      q!.weight,
      k!.weight,
      v!.weight,
      o!.weight,
      layer.postAttentionNorm.weight,
      g!.weight,
      u!.weight,
      d!.weight,
      q!.bias,
      k!.bias,
      v!.bias,
      a.qNorm?.weight ?? null,
      a.kNorm?.weight ?? null,
    );
    for (const part of parts) {
      const adapter = part!.adapter;
      const slot = adapters.length;
      adapters.push(adapter);
      loraVariables.push(adapter?.loraA ?? null, adapter?.loraB ?? null);
      if (adapter !== null) {
        loraShape[2 * slot] = adapter.scaling;
        loraShape[2 * slot + 1] = adapter.r;
      }
    }
  }
  return { variables, loraVariables, loraShape, adapters };
}

/**
 * One native decoder call wired into autodiff: per-row `[log p, stats…]` of `labelValues`, or with
 * `labelValues` null the final-normed hidden states `[B·T, hidden]`. Undefined when the native path
 * does not apply.
 */
function nativeDecoderRun(
  decoder: FusableDecoder,
  state: NativeDecoderState,
  inputs: ForwardInputs,
  b: number,
  t: number,
  labelValues: Int32Array | null,
  withStats: boolean,
): tf.Tensor2D | undefined {
  const addon = decoderAddon();
  if (addon === undefined) return undefined;
  const collected = collectWeights(decoder);
  if (collected === undefined) return undefined;
  const { variables, loraVariables, loraShape, adapters } = collected;
  const arrays = (list: (tf.Variable | null)[]): Array<Float32Array | null> | undefined => {
    const out: Array<Float32Array | null> = [];
    for (const v of list) {
      const values = v === null ? null : float32(v);
      if (values === undefined) return undefined;
      out.push(values);
    }
    return out;
  };
  const weights = arrays(variables);
  const loraWeights = arrays(loraVariables);
  if (weights === undefined || loraWeights === undefined) return undefined;
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
  [...variables, ...loraVariables].forEach((v, index) => {
    // Hidden states do not use the LM head (an untied lm_head gets no gradient, as in the tfjs path).
    if (hiddenMode && index === 2) return;
    if (v?.trainable && !seen.has(v)) {
      seen.add(v);
      trainable.push({ variable: v, index });
    }
  });
  const base = variables.length;
  const h = decoder.config.hiddenSize;
  const inFeatures = [h, h, h, decoder.config.numHeads * decoder.config.headDim, h, h, decoder.config.intermediateSize];
  /** This call's dropout multipliers, drawn in the order the tfjs decoder draws them (layer, then q k v o gate up down). */
  const dropoutMasks = (): Array<Float32Array | null> | null => {
    let any = false;
    const masks = adapters.map((adapter, slot) => {
      const seed = adapter?.nextDropoutSeed();
      if (adapter === null || seed === undefined) return null;
      any = true;
      const inF = inFeatures[slot % 7]!;
      return tf.tidy(() => tf.dropout(tf.ones([n, inF]), adapter.dropout, undefined, seed).dataSync() as Float32Array);
    });
    return any ? masks : null;
  };
  const taped = tf.engine().isTapeOn() && trainable.length > 0;

  // Drawn here, before the op: inside tf.customGrad's forward the tape reads as off, and LoRA's "auto"
  // dropout follows the tape.
  const masks = anyAdapter ? dropoutMasks() : null;
  const run = (save: boolean): { packed: Float32Array; ctx: object } => {
    const ctx = state.take(addon);
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

/**
 * Per-row log-probabilities of `labels` through the native fused decoder, or undefined when the
 * native path does not apply (no active `native-blas` plugin, a wrapped projection, non-float32
 * weights, an unsupported layout). Differentiable w.r.t. every trainable weight via `tf.customGrad`.
 * @param decoder the model's decoder.
 * @param state the model's {@link NativeDecoderState}.
 * @param inputs ids, optional attention mask and positions.
 * @param labels `[B, T]` int32 labels.
 * @param withStats also return `[B·T, 3]` mean logit, entropy and argmax hit.
 */
export function nativeTokenLogProbs(
  decoder: FusableDecoder,
  state: NativeDecoderState,
  inputs: ForwardInputs,
  labels: tf.Tensor2D,
  withStats: boolean,
): { logProbs: tf.Tensor1D; stats?: tf.Tensor2D } | undefined {
  const [b, t] = labels.shape;
  const n = b * t;
  const packedTensor = nativeDecoderRun(decoder, state, inputs, b, t, Int32Array.from(labels.dataSync()), withStats);
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

/**
 * The final-normed hidden states `[B, T, hidden]` (what `Decoder.forwardHidden` returns) through the
 * native fused decoder, or undefined when the native path does not apply. Differentiable w.r.t. every
 * weight it uses (not an untied `lm_head`).
 * @param decoder the model's decoder.
 * @param state its {@link NativeDecoderState}.
 * @param inputs ids, optional attention mask and positions.
 */
export function nativeHiddenStates(
  decoder: FusableDecoder,
  state: NativeDecoderState,
  inputs: ForwardInputs,
): tf.Tensor3D | undefined {
  const ids = inputs.inputIds;
  const shape = Array.isArray(ids) ? [ids.length, ids.length > 0 ? ids[0]!.length : 0] : (ids as tf.Tensor).shape;
  if (shape.length !== 2 || shape[0]! * shape[1]! === 0) return undefined;
  const [b, t] = shape as [number, number];
  const packed = nativeDecoderRun(decoder, state, inputs, b, t, null, false);
  if (packed === undefined) return undefined;
  const hidden = tf.reshape(packed, [b, t, decoder.config.hiddenSize]) as tf.Tensor3D;
  packed.dispose();
  return hidden;
}
