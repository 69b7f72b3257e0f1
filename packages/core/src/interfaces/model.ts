import type * as tf from "@tensorflow/tfjs-core";
import { ConfigError } from "../errors/index.js";
import type { Rng } from "../rng/index.js";

/** Integer matrix given either as nested arrays or as an int32 tensor of shape [B, T]. */
export type IntMatrix = number[][] | tf.Tensor2D;

/** Inputs of a causal-LM forward pass, with transformers' meaning. */
export interface ForwardInputs {
  /** Token ids, [B, T]. */
  inputIds: IntMatrix;
  /** 1 for real tokens, 0 for padding, [B, T]. Defaults to all ones. */
  attentionMask?: IntMatrix;
  /** Rotary positions, [B, T]. Defaults to 0..T-1 for every row (as transformers does without position_ids). */
  positionIds?: IntMatrix;
}

/** Output of {@link CausalLM.forward}. */
export interface CausalLMOutput {
  /** float32 logits [B, T, V]. The caller owns and must dispose it. */
  logits: tf.Tensor3D;
}

/** The minimal config every decoder exposes (HF field names). */
export interface BaseModelConfig {
  model_type: string;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  [field: string]: unknown;
}

/**
 * A causal language model as trainers see it. `@prefkit/models` implements it for
 * Llama, Qwen2, Qwen3, Mistral and SmolLM checkpoints; users may bring their own.
 */
export interface CausalLM {
  /** The HF `config.json` content, typed by the implementation. */
  readonly config: BaseModelConfig;
  /** Forward pass. Must be callable inside `tf.grad`/`tf.variableGrads` (no data syncs on the differentiated path). */
  forward(inputs: ForwardInputs): CausalLMOutput;
  /** Every weight by its HF name (e.g. `model.layers.3.self_attn.q_proj.weight`). */
  namedParameters(): Map<string, tf.Variable>;
  /** The variables an optimizer should update. Frozen weights are excluded. */
  trainableVariables(): tf.Variable[];
  /** Write the model in HF layout (config.json, model.safetensors, generation_config.json, tokenizer files). */
  savePretrained(dir: string): Promise<void>;
  /** Free every tensor the model owns. */
  dispose(): void;
}

/**
 * Optional capability: a model that carries adapters (e.g. LoRA) and can run with them switched
 * off. When a DPO or PPO trainer gets such a model and no reference model, the reference is the
 * same model inside {@link AdapterToggle.withAdaptersDisabled}: no second copy of the weights.
 */
export interface AdapterToggle {
  /** Run `fn` with every adapter disabled (the base model), then restore the previous state. */
  withAdaptersDisabled<T>(fn: () => T): T;
}

/**
 * Optional capability: HF's gradient checkpointing (`model.gradient_checkpointing_enable()`). A training
 * forward pass keeps only each layer's input and the backward pass recomputes the layer: activation memory
 * of one layer instead of all, for one more forward pass of compute. The trainer enables it when
 * `TrainingArgs.gradientCheckpointing` is set.
 */
export interface GradientCheckpointingModel {
  /** Keep only each layer's input in training forward passes; recompute layers in the backward pass. */
  gradientCheckpointingEnable(): void;
  /** Keep every activation again (the default). */
  gradientCheckpointingDisable(): void;
  /** Whether gradient checkpointing is on. */
  readonly isGradientCheckpointing: boolean;
}

/** True when `model` implements {@link GradientCheckpointingModel}. */
export function supportsGradientCheckpointing<T extends object>(model: T): model is T & GradientCheckpointingModel {
  const m = model as Partial<GradientCheckpointingModel>;
  return typeof m.gradientCheckpointingEnable === "function" && typeof m.gradientCheckpointingDisable === "function";
}

/**
 * Gradient checkpointing of a model made of parts (a policy with its reference or value model): the first
 * part (the trained policy) must support it, the others follow when they do.
 * @throws ConfigError (field `gradientCheckpointing`) on enable when the first part does not support it.
 */
export function gradientCheckpointingOver(parts: () => readonly object[]): GradientCheckpointingModel {
  const each = (enable: boolean) => {
    const [first, ...rest] = parts();
    if (first === undefined || !supportsGradientCheckpointing(first)) {
      throw new ConfigError("the model does not support gradient checkpointing (gradientCheckpointingEnable())", {
        field: "gradientCheckpointing",
      });
    }
    for (const m of [first, ...rest.filter((p) => supportsGradientCheckpointing(p))] as GradientCheckpointingModel[]) {
      if (enable) m.gradientCheckpointingEnable();
      else m.gradientCheckpointingDisable();
    }
  };
  return {
    gradientCheckpointingEnable: () => each(true),
    gradientCheckpointingDisable: () => each(false),
    get isGradientCheckpointing() {
      const first = parts()[0];
      return first !== undefined && supportsGradientCheckpointing(first) && first.isGradientCheckpointing;
    },
  };
}

/** Optional capability: a model that can make a frozen, independent copy of its current weights. */
export interface FrozenCopyable {
  /** A new model with copies of the current weights, all with `trainable = false`. */
  frozenCopy(): CausalLM;
}

/**
 * A weight held as 16-bit bit patterns outside TensorFlow.js (which has no 16-bit dtypes): what a model
 * loaded with `dtype: "bfloat16"` or `"float16"` keeps for its frozen weights. It is not a `tf.Variable`
 * and not in `namedParameters()`; see {@link HalfPrecisionWeights}.
 */
export interface HalfPrecisionTensor {
  /** What the bits encode. */
  readonly dtype: "bfloat16" | "float16";
  /** Dimensions, outermost first (row-major). */
  readonly shape: readonly number[];
  /** The bit patterns, row-major. Never written in place: {@link HalfPrecisionTensor.assign} replaces the array. */
  readonly bits: Uint16Array;
  /**
   * Whether training updates this weight. A trainable 16-bit weight gets a float32 master copy (a
   * `tf.Variable` that replaces it) the first time the model's `trainableVariables()` is called; set it
   * false to keep the weight frozen in 16 bits (LoRA does so for the base weights).
   */
  trainable: boolean;
  /** The values upcast to float32 (exact: every 16-bit value is a float32 value). A new array. */
  float32(): Float32Array;
  /** Replace the values by `values` rounded to {@link dtype} (round to nearest even), in a new bits array. */
  assign(values: Float32Array): void;
}

/**
 * Optional capability: a model whose frozen weights are stored in 16 bits ({@link HalfPrecisionTensor}s,
 * outside `namedParameters()`). Code that must see every weight (fingerprints, syncing a reference)
 * reads both maps.
 */
export interface HalfPrecisionWeights {
  /** The weights currently stored in 16 bits, by HF parameter name (each name is in one map only). */
  halfPrecisionWeights(): Map<string, HalfPrecisionTensor>;
}

/** True when `model` implements {@link HalfPrecisionWeights}. */
export function hasHalfPrecisionWeights<M extends object>(model: M): model is M & HalfPrecisionWeights {
  return typeof (model as Partial<HalfPrecisionWeights>).halfPrecisionWeights === "function";
}

/** True when `model` implements {@link AdapterToggle}. */
export function hasAdapterToggle(model: CausalLM): model is CausalLM & AdapterToggle {
  return typeof (model as Partial<AdapterToggle>).withAdaptersDisabled === "function";
}

/** True when `model` implements {@link FrozenCopyable}. */
export function isFrozenCopyable(model: CausalLM): model is CausalLM & FrozenCopyable {
  return typeof (model as Partial<FrozenCopyable>).frozenCopy === "function";
}

/**
 * Optional capability: a model that exposes its final hidden states and a plain LM head, so log-probs
 * can be computed by core's chunked `lmHeadLogProbs` without materialising `[B, T, V]` logits
 * (`tryFusedSequenceLogProbs`, which also takes a model's {@link DirectTokenLogProbsLM} pass first).
 * {@link hasFusedHead} tells whether the head is plain now.
 */
export interface HiddenStatesLM {
  /** Final-normed hidden states `[B, T, H]`, such that `logits = hidden · lmHeadWeight()ᵀ`. Differentiable. */
  forwardHidden(inputs: ForwardInputs): tf.Tensor3D;
  /**
   * The LM head weight `[V, H]` (HF layout; the embedding when tied), or `undefined` when the head is not
   * a plain bias-free linear map (wrapped by LoRA or AMP, or with a bias): callers then use `forward`.
   * The model owns the tensor: do not dispose it.
   */
  lmHeadWeight(): tf.Tensor2D | undefined;
}

/**
 * Optional capability of a {@link HiddenStatesLM}: the per-row log-probabilities of given labels
 * computed by the model in one fused pass (e.g. the native decoder of the `native-blas` plugin),
 * with the same values and gradients as `lmHeadLogProbs(forwardHidden(inputs), lmHeadWeight(), labels)`.
 * `tryFusedSequenceLogProbs` tries it first (whatever the LM head's storage: 16-bit heads included) and falls
 * back to the tfjs ops when it returns `undefined`.
 */
export interface DirectTokenLogProbsLM {
  /**
   * `log_softmax(logits)[row, labels[row]]` for every row of the flattened `[B·T]` batch, or
   * `undefined` when this model cannot take the fused path for these inputs (then nothing was computed).
   * @param inputs the forward inputs.
   * @param labels `[B, T]` int32 next-token ids (clamped to the vocabulary).
   * @param options `withStats` adds `[B·T, 3]` mean logit, entropy and argmax hit (no gradient).
   */
  directTokenLogProbs(
    inputs: ForwardInputs,
    labels: tf.Tensor2D,
    options: { withStats?: boolean },
  ): { logProbs: tf.Tensor1D; stats?: tf.Tensor2D } | undefined;
}

/** True when `model` implements {@link DirectTokenLogProbsLM}. */
export function hasDirectTokenLogProbs(model: CausalLM): model is CausalLM & DirectTokenLogProbsLM {
  return typeof (model as Partial<DirectTokenLogProbsLM>).directTokenLogProbs === "function";
}

/**
 * True when `model` implements {@link HiddenStatesLM} and its LM head is currently plain
 * (`lmHeadWeight()` is defined). Check it per use: a plugin may wrap `lm_head` later.
 */
export function hasFusedHead(model: CausalLM): model is CausalLM & HiddenStatesLM {
  const m = model as Partial<HiddenStatesLM>;
  return (
    typeof m.forwardHidden === "function" && typeof m.lmHeadWeight === "function" && m.lmHeadWeight() !== undefined
  );
}

/**
 * Options of {@link Generator.generate}, with transformers' `generate()` meaning. Fields left
 * out fall back to the model's `generation_config.json`, then to the defaults given here.
 */
export interface GenerateOptions {
  /** Maximum number of new tokens per row (the prompt does not count). Default: `max_new_tokens` of the generation config, else 20. */
  maxNewTokens?: number;
  /** Sample (true) or take the argmax (false, the default: greedy decoding). */
  doSample?: boolean;
  /** Softmax temperature of sampling and of {@link GenerateOptions.returnLogprobs}. Must be > 0. Default 1. */
  temperature?: number;
  /** Sample only among the k most likely tokens (ties at the k-th logit kept, as HF). 0 = off (the default; HF's class default is 50). */
  topK?: number;
  /** Nucleus sampling: the smallest set of most likely tokens with probability mass ≥ topP. 1 = off (the default). */
  topP?: number;
  /** Token id(s) that end a row (HF `eos_token_id`). Default: the generation config's `eos_token_id`. */
  eosTokenId?: number | number[];
  /** More ids that end a row, in addition to {@link GenerateOptions.eosTokenId}. */
  stopTokenIds?: number[];
  /** Id written after a row has stopped. Default: the generation config's `pad_token_id`, else the first stop id. */
  padTokenId?: number;
  /** Seed of the sampler: the same seed, model and inputs give the same output. Ignored when {@link GenerateOptions.rng} is set. */
  seed?: number;
  /** A generator to draw from instead of a fresh one (e.g. a trainer's stream, which then advances). */
  rng?: Rng;
  /**
   * `[B, T]` mask of left-padded prompts: 1 for real tokens, 0 for padding, which must come
   * before every real token of its row. Positions are `cumsum(mask) − 1`, as in transformers.
   * Default: all ones.
   */
  attentionMask?: IntMatrix;
  /** Also return `log softmax(logits / temperature)` of each generated token (what PPO needs). */
  returnLogprobs?: boolean;
}

/** Result of {@link Generator.generate}. Rows are in input order. */
export interface GenerateOutput {
  /** Per row: its prompt without the padding, then {@link GenerateOutput.newTokens}. Ragged. */
  sequences: number[][];
  /** Per row: the generated ids up to and including the stop token (no trailing padding). */
  newTokens: number[][];
  /**
   * `[B, T + steps]` as transformers returns it: the padded prompts, then per step one id per
   * row, `padTokenId` after a row has stopped.
   */
  paddedSequences: number[][];
  /** Per row: the number of generated tokens, the stop token included (`newTokens[b].length`). */
  numGeneratedTokens: number[];
  /** Per row: true when it ended on a stop token, false when it ran out of `maxNewTokens`. */
  finished: boolean[];
  /** With `returnLogprobs`: per row, the log-prob of each generated token (aligned with `newTokens`). */
  logprobs?: number[][];
}

/** Optional capability: a model that can generate continuations (PPO rollouts, evaluation). */
export interface Generator {
  /** Generate continuations of a batch of prompts `[B, T]` (left-padded when rows differ in length). */
  generate(inputIds: IntMatrix, options?: GenerateOptions): Promise<GenerateOutput>;
}

/** True when `model` implements {@link Generator}. */
export function canGenerate(model: CausalLM): model is CausalLM & Generator {
  return typeof (model as Partial<Generator>).generate === "function";
}

/** One decoding step of {@link StreamingGenerator.generateStream}: the token each row chose. */
export interface GenerationStep {
  /** Index of the step (0 for the first new token). */
  step: number;
  /** Per row: the id chosen at this step, or null for a row that had stopped at an earlier step. */
  tokens: (number | null)[];
  /** With {@link GenerateOptions.returnLogprobs}: per row, the log-prob of its token (null where `tokens` is null). */
  logprobs?: (number | null)[];
  /** Per row: whether it has stopped (its stop token may be this step's). */
  finished: boolean[];
}

/**
 * Optional capability: generation that yields each step's tokens as they are chosen (for CLIs and web
 * pages), then returns what {@link Generator.generate} returns. Same options, same tokens for the same seed.
 */
export interface StreamingGenerator {
  /** An async iterator over the steps; its return value is the whole {@link GenerateOutput}. */
  generateStream(
    inputIds: IntMatrix,
    options?: GenerateOptions,
  ): AsyncGenerator<GenerationStep, GenerateOutput, undefined>;
}

/** True when `model` implements {@link StreamingGenerator}. */
export function canStreamGeneration(model: CausalLM): model is CausalLM & StreamingGenerator {
  return typeof (model as Partial<StreamingGenerator>).generateStream === "function";
}
