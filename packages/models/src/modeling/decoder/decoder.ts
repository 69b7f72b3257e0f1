/**
 * The one decoder behind every supported family: token embedding → N × (RMSNorm → attention →
 * residual → RMSNorm → SwiGLU → residual) → final RMSNorm → LM head. Everything
 * family-specific arrives as flags in {@link DecoderConfig}.
 * @module
 */
import { ConfigError, type ForwardInputs, hostEnv, type IntMatrix, tf } from "@prefkit/core";
import type { DecodingSession } from "../../generation/session.js";
import type { DecoderConfig } from "../config.js";
import type { DecoderAccelerator, DecoderComputeDtype, DecoderModules, TokenLogProbs } from "./accelerator.js";
import { Attention, attentionBias, incrementalAttentionBias, type LayerKeyValue } from "./attention.js";
import { EMBEDDING_MODULE, TokenEmbedding } from "./embedding.js";
import { type DecoderWeight, HalfPrecisionWeight, plainLinear, plainProjection } from "./half-precision.js";
import { DecoderLayer } from "./layer.js";
import type { LinearModule } from "./linear.js";
import { MLP } from "./mlp.js";
import { RMSNorm } from "./rmsnorm.js";
import { RotaryEmbedding } from "./rope.js";

/** Inputs of {@link Decoder.forwardWithPast}: the new tokens of one decoding step. */
export interface DecoderStepInputs {
  /** New token ids `[B, t]` (the prompt on the first step, usually one token afterwards). */
  inputIds: IntMatrix;
  /**
   * `[B, P + t]` over the cached and the new positions: 1 for real tokens, 0 for padding.
   * Omit for no padding.
   */
  attentionMask?: IntMatrix;
  /** Rotary positions of the new tokens `[B, t]` (the caller tracks them, e.g. `cumsum(mask) − 1`). */
  positionIds: IntMatrix;
  /** Per-layer caches of the P earlier positions, or null/omitted on the first step. */
  past?: readonly LayerKeyValue[] | null;
  /** Return the hidden state of the last new position only (`[B, 1, hidden]`): what sampling needs. */
  lastPositionOnly?: boolean;
}

/** Result of {@link Decoder.forwardWithPast}. */
export interface DecoderStepOutput {
  /** Final-normed hidden states `[B, t, hidden]` (or `[B, 1, hidden]` with `lastPositionOnly`). */
  hidden: tf.Tensor3D;
  /** Per-layer caches extended to P + t positions. New tensors; the caller disposes them and `past`. */
  presents: LayerKeyValue[];
}

/** How the decoder runs one forward pass. */
export interface DecoderForwardOptions {
  /**
   * Also return HF's `output_hidden_states`: `[0]` the embeddings, `[i]` the output of layer
   * i − 1, and the last entry the final-normed states (L + 1 tensors in all).
   */
  outputHiddenStates?: boolean;
}

/** Result of {@link Decoder.forwardHidden}. */
export interface DecoderHiddenOutput {
  /** Final-normed hidden states `[B, T, hidden]`. */
  hidden: tf.Tensor3D;
  /** HF-style per-layer states when requested (the last entry is `hidden` itself). */
  hiddenStates?: tf.Tensor3D[];
}

function toIntTensor(m: IntMatrix, field: string): tf.Tensor2D {
  if (Array.isArray(m)) {
    const rows = m.length;
    const cols = rows > 0 ? m[0]!.length : 0;
    if (m.some((r) => r.length !== cols)) throw new ConfigError("rows have different lengths", { field });
    return tf.tensor2d(m.flat(), [rows, cols], "int32");
  }
  if (m.rank !== 2) throw new ConfigError(`expected a [B, T] tensor, got rank ${m.rank}`, { field });
  return m.dtype === "int32" ? m : tf.cast(m, "int32");
}

/**
 * The decoder body and LM head over HF-named variables. Build it through
 * `PreTrainedModelForCausalLM` (which validates the weights); this class trusts its inputs.
 */
export class Decoder implements DecoderModules {
  /** The flags this decoder was built from. */
  readonly config: DecoderConfig;
  /** `model.embed_tokens` (a float32 variable or a frozen 16-bit table); see {@link replaceWeight}. */
  embedding: TokenEmbedding;
  /** The blocks, in order. */
  readonly layers: DecoderLayer[];
  /** `model.norm`. */
  readonly norm: RMSNorm;
  /** `lm_head` (sharing the embedding's weight when tied). A mutable slot, like every projection. */
  lmHead: LinearModule;
  private readonly rotary: RotaryEmbedding;
  /** The fused implementation tried before the tfjs ops (the model classes pass the native one), if any. */
  readonly accelerator: DecoderAccelerator | undefined;
  private readonly slots = new Map<string, { get: () => LinearModule; set: (m: LinearModule) => void }>();
  /**
   * Take the fused native decoder (the {@link accelerator}) when it applies (the default; see
   * `docs/guides/backends.md`). Set false to always run the tfjs ops, e.g. to compare bit for bit with a
   * model whose projections are wrapped (which runs the tfjs ops); the two paths agree to float
   * rounding, not bitwise.
   */
  useNativeDecoder = true;
  /**
   * Let `generate()` decode with the accelerator's session (the native decode step) when it applies (the
   * default, unless the environment sets `PREFKIT_NATIVE_GENERATION=0`). Set false to decode with the
   * tfjs ops while the fused forward still runs everything else (e.g. to compare the two, or a PPO
   * update's rollout before and after). {@link useNativeDecoder} false switches it off too.
   */
  useNativeGeneration = hostEnv("PREFKIT_NATIVE_GENERATION") !== "0";
  /**
   * What the fused decoder's matrix products compute in: `"float32"` (the default), or `"bfloat16"`, as
   * PyTorch's CPU autocast: the projections, LoRA updates and LM head take operands rounded to bf16 and sum
   * the exact products in fp32 (frozen weights packed once in bf16, trainable ones repacked once per
   * optimizer step); norms, softmax, attention, log-probs, losses and the master weights stay fp32. AMP's
   * `compute: "bfloat16"` sets it. The tfjs ops (another backend, a declined module) always compute in fp32.
   */
  computeDtype: DecoderComputeDtype = "float32";
  /**
   * HF's gradient checkpointing, in the fused decoder: a training forward pass keeps only each layer's
   * input, and the backward pass recomputes the layer before its gradients (the same values: the same
   * products and dropout masks). Activation memory drops from every layer's to one layer's, for one more
   * forward pass of compute. The tfjs ops keep every activation regardless.
   */
  gradientCheckpointing = false;
  /**
   * Make the fused decoder's pack the only storage of a bf16 frozen weight (default false): once a
   * layer projection's weight is packed, its bits array is dropped, and whatever else
   * needs the bits (saving, the tfjs ops, merging LoRA, a repack for another compute type) unpacks them
   * from the pack, exactly. Frozen 16-bit weights then cost 2 bytes per element once instead of twice;
   * the tfjs ops get slower (an unpack per use), and `savePretrained` holds the unpacked bits of all
   * weights while it writes. fp16 weights, the embedding and the LM head (which the tfjs ops read whenever
   * full logits are computed) keep their bits.
   */
  packedStorage = false;

  /**
   * @param config decoder flags.
   * @param weights every tensor of `expectedWeightShapes(config)`, by HF name: float32 variables, or
   *   16-bit weights for the projections and the embedding (norms and biases are always variables).
   * @param accelerator a fused implementation to try first (e.g. `nativeDecoderAccelerator`); none
   *   runs the tfjs ops only.
   */
  constructor(config: DecoderConfig, weights: ReadonlyMap<string, DecoderWeight>, accelerator?: DecoderAccelerator) {
    this.config = config;
    this.accelerator = accelerator;
    const w = (name: string): DecoderWeight => {
      const found = weights.get(name);
      if (!found) throw new ConfigError("missing tensor", { tensor: name });
      return found;
    };
    const variable = (name: string): tf.Variable | null => {
      const found = weights.get(name);
      if (found instanceof HalfPrecisionWeight) {
        throw new ConfigError("norms and biases are float32 variables, not 16-bit storage", { tensor: name });
      }
      return found ?? null;
    };
    const v = (name: string): tf.Variable => {
      const found = variable(name);
      if (!found) throw new ConfigError("missing tensor", { tensor: name });
      return found;
    };
    const linear = (name: string) => plainLinear(name, w(`${name}.weight`), variable(`${name}.bias`));

    this.rotary = new RotaryEmbedding(config.headDim, config.ropeTheta, config.ropeScaling);
    this.embedding = new TokenEmbedding(w(`${EMBEDDING_MODULE}.weight`));
    this.layers = [];
    for (let i = 0; i < config.numLayers; i++) {
      const p = `model.layers.${i}`;
      const eps = config.rmsNormEps;
      const attn = new Attention(
        {
          qProj: linear(`${p}.self_attn.q_proj`),
          kProj: linear(`${p}.self_attn.k_proj`),
          vProj: linear(`${p}.self_attn.v_proj`),
          oProj: linear(`${p}.self_attn.o_proj`),
          qNorm: config.qkNorm ? new RMSNorm(`${p}.self_attn.q_norm`, v(`${p}.self_attn.q_norm.weight`), eps) : null,
          kNorm: config.qkNorm ? new RMSNorm(`${p}.self_attn.k_norm`, v(`${p}.self_attn.k_norm.weight`), eps) : null,
        },
        config,
        this.rotary,
      );
      const mlp = new MLP({
        gateProj: linear(`${p}.mlp.gate_proj`),
        upProj: linear(`${p}.mlp.up_proj`),
        downProj: linear(`${p}.mlp.down_proj`),
      });
      const windowed = config.slidingWindow !== null && i >= config.slidingWindowStartLayer;
      this.layers.push(
        new DecoderLayer({
          inputNorm: new RMSNorm(`${p}.input_layernorm`, v(`${p}.input_layernorm.weight`), eps),
          selfAttn: attn,
          postAttentionNorm: new RMSNorm(
            `${p}.post_attention_layernorm`,
            v(`${p}.post_attention_layernorm.weight`),
            eps,
          ),
          mlp,
          slidingWindow: windowed ? config.slidingWindow : null,
        }),
      );
      const am = attn.modules;
      const mm = mlp.modules;
      this.addSlot(
        `${p}.self_attn.q_proj`,
        () => am.qProj,
        (m) => (am.qProj = m),
      );
      this.addSlot(
        `${p}.self_attn.k_proj`,
        () => am.kProj,
        (m) => (am.kProj = m),
      );
      this.addSlot(
        `${p}.self_attn.v_proj`,
        () => am.vProj,
        (m) => (am.vProj = m),
      );
      this.addSlot(
        `${p}.self_attn.o_proj`,
        () => am.oProj,
        (m) => (am.oProj = m),
      );
      this.addSlot(
        `${p}.mlp.gate_proj`,
        () => mm.gateProj,
        (m) => (mm.gateProj = m),
      );
      this.addSlot(
        `${p}.mlp.up_proj`,
        () => mm.upProj,
        (m) => (mm.upProj = m),
      );
      this.addSlot(
        `${p}.mlp.down_proj`,
        () => mm.downProj,
        (m) => (mm.downProj = m),
      );
    }
    this.norm = new RMSNorm("model.norm", v("model.norm.weight"), config.rmsNormEps);
    this.lmHead = config.tieWordEmbeddings
      ? plainLinear("lm_head", this.embedding.weight, null, true)
      : plainLinear("lm_head", w("lm_head.weight"));
    this.addSlot(
      "lm_head",
      () => this.lmHead,
      (m) => (this.lmHead = m),
    );
  }

  private addSlot(name: string, get: () => LinearModule, set: (m: LinearModule) => void): void {
    this.slots.set(name, { get, set });
  }

  /** Every projection by HF module name (attention, MLP and `lm_head`), as currently installed. */
  linearModules(): Map<string, LinearModule> {
    const out = new Map<string, LinearModule>();
    for (const [name, slot] of this.slots) out.set(name, slot.get());
    return out;
  }

  /**
   * Swap the projection called `name` for `wrap(current)`. This is the seam LoRA/AMP plugins use.
   * @throws ConfigError if no projection has that name.
   */
  replaceLinear(name: string, wrap: (current: LinearModule) => LinearModule): LinearModule {
    const slot = this.slots.get(name);
    if (!slot) {
      throw new ConfigError(`no linear module named "${name}" (see linearModules() for the names)`, { field: name });
    }
    const next = wrap(slot.get());
    slot.set(next);
    return next;
  }

  /**
   * Put `weight` in place of the stored weight `name` (`model.embed_tokens.weight` or `<module>.weight`):
   * a 16-bit weight's float32 master when it starts training, or the reverse. The module holding it must
   * be the plain projection the decoder built (a tied `lm_head` follows the embedding).
   * @throws ConfigError, before changing anything, when `name` is not a projection or embedding weight,
   *   or a wrapper (LoRA) holds it.
   */
  replaceWeight(name: string, weight: DecoderWeight): void {
    const embeddingWeight = `${EMBEDDING_MODULE}.weight`;
    const headFollows = this.config.tieWordEmbeddings && plainProjection(this.lmHead)?.weight === this.embedding.weight;
    if (name === embeddingWeight) {
      if (this.config.tieWordEmbeddings && !headFollows) {
        throw new ConfigError('the tied "lm_head" is wrapped; its weight cannot be replaced under the wrapper', {
          tensor: name,
        });
      }
      this.embedding = new TokenEmbedding(weight);
      if (headFollows) this.lmHead = plainLinear("lm_head", weight, null, true);
      return;
    }
    const tiedHead = this.config.tieWordEmbeddings && name === "lm_head.weight";
    const slot = name.endsWith(".weight") && !tiedHead ? this.slots.get(name.slice(0, -".weight".length)) : undefined;
    if (slot === undefined) {
      throw new ConfigError("not the weight of a projection or of the embedding", { tensor: name });
    }
    const current = plainProjection(slot.get());
    if (current === undefined) {
      throw new ConfigError(
        "the projection is wrapped (e.g. by LoRA); its weight cannot be replaced under the wrapper",
        {
          tensor: name,
        },
      );
    }
    slot.set(plainLinear(current.name, weight, current.bias));
  }

  /** Every variable, by parameter name: embedding, norms and each module's `parameters()`. */
  namedParameters(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>(this.embedding.parameters());
    const modules = this.linearModules();
    this.layers.forEach((layer, i) => {
      const p = `model.layers.${i}`;
      const add = (m: Map<string, tf.Variable>) => {
        for (const [k, val] of m) out.set(k, val);
      };
      add(layer.inputNorm.parameters());
      for (const name of ["q_proj", "k_proj", "v_proj", "o_proj"])
        add(modules.get(`${p}.self_attn.${name}`)!.parameters());
      if (layer.selfAttn.modules.qNorm) add(layer.selfAttn.modules.qNorm.parameters());
      if (layer.selfAttn.modules.kNorm) add(layer.selfAttn.modules.kNorm.parameters());
      add(layer.postAttentionNorm.parameters());
      for (const name of ["gate_proj", "up_proj", "down_proj"]) add(modules.get(`${p}.mlp.${name}`)!.parameters());
    });
    for (const [k, val] of this.norm.parameters()) out.set(k, val);
    for (const [k, val] of this.lmHead.parameters()) out.set(k, val);
    return out;
  }

  /**
   * Final-normed hidden states for a batch. Differentiable with respect to every variable and
   * free of data syncs, so it can run inside `tf.variableGrads`.
   */
  forwardHidden(inputs: ForwardInputs, options: DecoderForwardOptions = {}): DecoderHiddenOutput {
    if (!options.outputHiddenStates) {
      // The fused decoder when one is attached and applies (the native one: cpu with its addon).
      const fused = this.activeAccelerator()?.hiddenStates(this, inputs);
      if (fused !== undefined) return { hidden: fused };
    }
    const result = tf.tidy(() => {
      const ids = toIntTensor(inputs.inputIds, "inputIds");
      const [b, t] = ids.shape;
      const mask = inputs.attentionMask ? toIntTensor(inputs.attentionMask, "attentionMask") : null;
      if (mask && (mask.shape[0] !== b || mask.shape[1] !== t)) {
        throw new ConfigError(`shape [${mask.shape}] differs from inputIds [${b},${t}]`, { field: "attentionMask" });
      }
      const positions = inputs.positionIds
        ? toIntTensor(inputs.positionIds, "positionIds")
        : (tf.reshape(tf.range(0, t, 1, "int32"), [1, t]) as tf.Tensor2D);
      if (positions.shape[1] !== t || (positions.shape[0] !== b && positions.shape[0] !== 1)) {
        throw new ConfigError(`shape [${positions.shape}] does not fit inputIds [${b},${t}]`, { field: "positionIds" });
      }
      const rope = this.rotary.tables(positions);

      const biases = new Map<number | null, tf.Tensor5D>();
      const biasFor = (window: number | null): tf.Tensor5D => {
        const key = window !== null && window >= t ? null : window; // a window ≥ T is plain causal
        let bias = biases.get(key);
        if (!bias) {
          bias = attentionBias(mask, t, key);
          biases.set(key, bias);
        }
        return bias;
      };

      let h = tf.reshape(this.embedding.lookup(ids), [b, t, this.config.hiddenSize]) as tf.Tensor3D;
      const states: tf.Tensor3D[] = [];
      if (options.outputHiddenStates) states.push(h);
      for (const layer of this.layers) {
        h = layer.apply(h, rope, biasFor(layer.slidingWindow));
        if (options.outputHiddenStates) states.push(h);
      }
      const normed = this.norm.apply(h) as tf.Tensor3D;
      if (options.outputHiddenStates) states[states.length - 1] = normed;
      return { hidden: normed, states };
    });
    return options.outputHiddenStates
      ? { hidden: result.hidden, hiddenStates: result.states }
      : { hidden: result.hidden };
  }

  /**
   * One incremental decoding step: embed the new tokens, run every layer over its cache, and
   * return the final-normed hidden states with the extended caches. Uses the same layers and
   * module slots as {@link forwardHidden}; positions and the mask over the whole cache come
   * from the caller. Not meant for `tf.variableGrads` (generation is inference).
   * @throws ConfigError when a shape does not fit (named by field).
   */
  forwardWithPast(inputs: DecoderStepInputs): DecoderStepOutput {
    return tf.tidy(() => {
      const ids = toIntTensor(inputs.inputIds, "inputIds");
      const [b, t] = ids.shape;
      const past = inputs.past ?? null;
      if (past && past.length !== this.layers.length) {
        throw new ConfigError(`has ${past.length} layers, the model ${this.layers.length}`, { field: "past" });
      }
      const pastLen = past ? past[0]!.key.shape[2] : 0;
      if (past && past[0]!.key.shape[0] !== b) {
        throw new ConfigError(`batch ${past[0]!.key.shape[0]} differs from inputIds' ${b}`, { field: "past" });
      }
      const mask = inputs.attentionMask ? toIntTensor(inputs.attentionMask, "attentionMask") : null;
      if (mask && (mask.shape[0] !== b || mask.shape[1] !== pastLen + t)) {
        throw new ConfigError(`shape [${mask.shape}] differs from [${b},${pastLen + t}] (batch, cached + new)`, {
          field: "attentionMask",
        });
      }
      const positions = toIntTensor(inputs.positionIds, "positionIds");
      if (positions.shape[1] !== t || (positions.shape[0] !== b && positions.shape[0] !== 1)) {
        throw new ConfigError(`shape [${positions.shape}] does not fit inputIds [${b},${t}]`, { field: "positionIds" });
      }
      const rope = this.rotary.tables(positions);
      const biases = new Map<number | null, tf.Tensor5D>();
      const biasFor = (window: number | null): tf.Tensor5D => {
        const key = window !== null && window >= pastLen + t ? null : window;
        let bias = biases.get(key);
        if (!bias) {
          bias = incrementalAttentionBias(mask, t, pastLen, key);
          biases.set(key, bias);
        }
        return bias;
      };

      let h = tf.reshape(this.embedding.lookup(ids), [b, t, this.config.hiddenSize]) as tf.Tensor3D;
      const presents: LayerKeyValue[] = [];
      this.layers.forEach((layer, i) => {
        const step = layer.applyWithPast(h, rope, biasFor(layer.slidingWindow), past ? past[i]! : null);
        h = step.hidden;
        presents.push(step.present);
      });
      if (inputs.lastPositionOnly && t > 1) h = tf.slice(h, [0, t - 1, 0], [b, 1, -1]) as tf.Tensor3D;
      return { hidden: this.norm.apply(h) as tf.Tensor3D, presents };
    });
  }

  /** Logits `[B, T, vocab]` from final-normed hidden states, through the `lm_head` slot. */
  logits(hidden: tf.Tensor3D): tf.Tensor3D {
    return this.lmHead.apply(hidden) as tf.Tensor3D;
  }

  /**
   * Per-row log-probabilities of `labels` `[B, T]` through the {@link accelerator} (the whole decoder
   * and LM head in one fused pass), or undefined when there is none, it is switched off
   * ({@link useNativeDecoder}) or it does not apply here. Differentiable w.r.t. every trainable variable.
   */
  acceleratedTokenLogProbs(inputs: ForwardInputs, labels: tf.Tensor2D, withStats: boolean): TokenLogProbs | undefined {
    return this.activeAccelerator()?.tokenLogProbs(this, inputs, labels, withStats);
  }

  /**
   * The accelerator's decoding session for `batch` rows and up to `capacity` columns (see
   * `DecoderAccelerator.startDecoding`), or undefined when there is none, it is switched off
   * ({@link useNativeGeneration}) or it does not apply; `generate()` then runs {@link forwardWithPast}.
   */
  startDecoding(batch: number, capacity: number): DecodingSession | undefined {
    if (!this.useNativeGeneration) return undefined;
    return this.activeAccelerator()?.startDecoding?.(this, batch, capacity);
  }

  private activeAccelerator(): DecoderAccelerator | undefined {
    return this.useNativeDecoder ? this.accelerator : undefined;
  }

  /** Free the rotary tables (variables are owned and disposed by the model). */
  disposeConstants(): void {
    this.rotary.dispose();
  }
}
