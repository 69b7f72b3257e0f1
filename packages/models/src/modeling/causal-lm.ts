/**
 * `PreTrainedModelForCausalLM`: the {@link CausalLM} implementation behind every supported
 * family, with transformers' entry points (`fromPretrained`, `savePretrained`, `forward`).
 * @module
 */
import { join } from "node:path";
import {
  type CausalLM,
  type CausalLMOutput,
  ConfigError,
  type ForwardInputs,
  type FrozenCopyable,
  type GenerateOptions,
  type FusedSequenceLogProbs,
  type FusedSequenceLogProbsOptions,
  tryFusedSequenceLogProbs,
  type GenerateOutput,
  type GenerationStep,
  type Generator,
  type HalfPrecisionWeights,
  type HiddenStatesLM,
  type IntMatrix,
  Rng,
  type StreamingGenerator,
  sequenceLogProbs,
  tf,
} from "@prefkit/core";
import { generate, generateStream } from "../generation/generate.js";
import {
  type CachedForwardInputs,
  type CachedForwardOutput,
  type IncrementalCausalLM,
  KVCache,
} from "../generation/kv-cache.js";
import type { DecodingSession } from "../generation/session.js";
import { SAFETENSORS_WEIGHTS_NAME } from "../io/checkpoint.js";
import {
  type GenerationConfig,
  type PretrainedConfig,
  readGenerationConfig,
  validateModelConfig,
} from "../io/config/index.js";
import { adapterFor } from "./adapters/index.js";
import type { DecoderConfig } from "./config.js";
import { Decoder } from "./decoder/decoder.js";
import type { HalfPrecisionWeight } from "./decoder/half-precision.js";
import { DecoderModel } from "./decoder-model.js";
import { Linear, type LinearModule } from "./decoder/linear.js";
import { expectedWeightShapes, initialWeights, validateWeights } from "./decoder/weights.js";
import { type ModelDtype, ModelWeights, type SaveDtype, type WeightSource } from "./model-weights.js";
import { nativeDecoderAccelerator } from "./native/accelerator.js";
import {
  activateBackend,
  type LoadDtype,
  readPretrainedConfig,
  readPretrainedWeights,
  savePretrainedDirectory,
} from "./pretrained-directory.js";

/** Options of {@link PreTrainedModelForCausalLM.fromPretrained}. */
export interface FromPretrainedOptions {
  /**
   * The dtype the weights are loaded and kept in, like transformers' `torch_dtype`:
   * - `"float32"`: every tensor upcast to float32 variables (bf16/f16 checkpoints included);
   * - `"bfloat16"` / `"float16"`: the projections, the embedding and an untied `lm_head` are kept as
   *   16-bit bit patterns, read tensor by tensor (a checkpoint already in that dtype is not converted at
   *   all, so loading takes about the file's size); norms and biases become float32 variables of values
   *   of that dtype. Compute stays float32 (each 16-bit weight is upcast where it is used). A 16-bit weight
   *   that trains gets a float32 master copy when training starts (the first `trainableVariables()` call):
   *   full fine-tuning trains float32 masters, while frozen weights (a LoRA base, the DPO/PPO reference
   *   copy made by `frozenCopy()`) stay 16-bit;
   * - `"auto"`: `config.json`'s `torch_dtype` (else the dtype of the checkpoint's first floating tensor),
   *   as transformers' `torch_dtype="auto"`.
   *
   * See the guide `docs/guides/lora-and-amp.md` ("Loading 16-bit checkpoints").
   * @defaultValue `"float32"`
   */
  dtype?: LoadDtype;
  /** TensorFlow.js backend to activate first (`"cpu"`, `"wasm"`, ...). Default: keep the current one. */
  backend?: string;
}

/** Options of {@link PreTrainedModelForCausalLM.fromConfig}. */
export interface FromConfigOptions {
  /** Seed of the normal initialiser; the same seed gives the same weights. Default 42. */
  seed?: number;
  /** Generation config to save alongside (e.g. bos/eos ids). */
  generationConfig?: GenerationConfig;
}

/** Options of {@link PreTrainedModelForCausalLM.savePretrained}. */
export interface SavePretrainedOptions {
  /**
   * Storage dtype of every tensor of `model.safetensors` (`torch_dtype` in config.json follows). Default:
   * a float32 model writes F32; a 16-bit model writes each weight in its dtype (its 16-bit weights byte
   * for byte, float32 variables in the model's dtype when their values are exactly of it, else F32, so
   * nothing training learned is rounded away) and `torch_dtype` is the model's dtype.
   */
  dtype?: SaveDtype;
  /**
   * Directory to copy tokenizer files from. Default: the directory the model was loaded from,
   * if any.
   */
  tokenizerFilesFrom?: string;
}

/** Options of {@link PreTrainedModelForCausalLM.forward}. */
export interface ForwardOptions {
  /** Also return HF's `hidden_states` (L + 1 tensors; see `DecoderForwardOptions`). */
  outputHiddenStates?: boolean;
}

/** {@link CausalLMOutput} plus the optional hidden states. */
export interface CausalLMForwardOutput extends CausalLMOutput {
  /** HF `hidden_states` when requested: `[0]` embeddings … `[L]` final-normed. Caller disposes. */
  hiddenStates?: tf.Tensor3D[];
}

/**
 * A causal LM (Llama, Qwen2, Qwen3, Mistral, SmolLM, or any registered family) over one shared
 * decoder. Weights are `tf.Variable`s keyed by HF tensor names.
 */
export class PreTrainedModelForCausalLM
  extends DecoderModel
  implements
    CausalLM,
    FrozenCopyable,
    Generator,
    StreamingGenerator,
    IncrementalCausalLM,
    HiddenStatesLM,
    HalfPrecisionWeights
{
  /** The HF `config.json` (with family defaults filled in); written back by `savePretrained`. */
  readonly config: PretrainedConfig;
  /** The decoder flags the adapter derived from `config`. */
  readonly decoderConfig: DecoderConfig;
  /** The decoder body and LM head. */
  override readonly decoder: Decoder;
  /** `generation_config.json`, if the model came with one. */
  generationConfig: GenerationConfig | undefined;
  /** Directory the model was loaded from (tokenizer files are copied from there on save). */
  readonly sourceDir: string | undefined;
  /** The model's own weights by HF name (float32 variables and 16-bit storage) and its dtype. */
  readonly weights: ModelWeights;
  private disposed = false;

  /**
   * Build from already validated, sanitized weights. Prefer {@link fromPretrained} or
   * {@link fromConfig}; this constructor checks the weights once more and copies them into variables
   * (or, with `extras.dtype` 16-bit, into 16-bit storage; see `FromPretrainedOptions.dtype`). A
   * {@link ModelWeights} is taken over as is.
   * @throws ConfigError naming a missing, unexpected or mis-shaped tensor.
   */
  constructor(
    config: PretrainedConfig,
    decoderConfig: DecoderConfig,
    weights: ReadonlyMap<string, WeightSource> | ModelWeights,
    extras: { generationConfig?: GenerationConfig; sourceDir?: string; file?: string; dtype?: ModelDtype } = {},
  ) {
    super();
    validateWeights(decoderConfig, weights instanceof ModelWeights ? weights.shapes() : weights, extras.file);
    this.config = config;
    this.decoderConfig = decoderConfig;
    this.generationConfig = extras.generationConfig;
    this.sourceDir = extras.sourceDir;
    this.weights =
      weights instanceof ModelWeights ? weights : ModelWeights.fromTensors(weights, extras.dtype ?? "float32");
    this.decoder = new Decoder(decoderConfig, this.weights.all(), nativeDecoderAccelerator);
  }

  /** The dtype the weights were loaded in (`FromPretrainedOptions.dtype`); `"float32"` unless loaded in 16 bits. */
  get dtype(): ModelDtype {
    return this.weights.dtype;
  }

  /**
   * Load a HF model directory (`config.json`, `model.safetensors` or sharded, optional
   * `generation_config.json`), like transformers' `from_pretrained`.
   * `options.dtype` picks the dtype the weights are kept in (16-bit checkpoints stay 16-bit with
   * `"bfloat16"`/`"float16"`/`"auto"`); see {@link FromPretrainedOptions.dtype}.
   * @throws ConfigError for an unsupported `model_type` (listing the supported ones), a bad
   *   config field, weights that do not match the config (naming the tensor), a `dtype` other than
   *   `"float32"`, `"bfloat16"`, `"float16"` or `"auto"`, or `"auto"` over a `torch_dtype` prefkit cannot hold.
   * @throws CheckpointError for unreadable or malformed files.
   */
  static async fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<PreTrainedModelForCausalLM> {
    await activateBackend(options.backend);
    const parts = await readPretrainedConfig(dir);
    const { config, adapter, decoderConfig } = parts;
    const { dtype, checkpoint } = await readPretrainedWeights(dir, parts, options.dtype);
    const weights = adapter.sanitize(checkpoint.tensors, decoderConfig);
    const generationConfig = await readGenerationConfig(dir);
    return new PreTrainedModelForCausalLM(config, decoderConfig, weights, {
      sourceDir: dir,
      file: join(dir, SAFETENSORS_WEIGHTS_NAME),
      dtype,
      ...(generationConfig !== undefined ? { generationConfig } : {}),
    });
  }

  /**
   * A randomly initialised model for a config (HF's `_init_weights`: N(0, initializer_range²)
   * weights, zero biases, unit norms), for demos, benchmarks and tests.
   * @param config a `config.json` object; omitted fields get the family's defaults.
   */
  static fromConfig(config: Record<string, unknown>, options: FromConfigOptions = {}): PreTrainedModelForCausalLM {
    const validated = validateModelConfig(config);
    const decoderConfig = adapterFor(validated).decoderConfig(validated);
    const weights = initialWeights(decoderConfig, new Rng(options.seed ?? 42));
    return new PreTrainedModelForCausalLM(validated, decoderConfig, weights, {
      ...(options.generationConfig !== undefined ? { generationConfig: options.generationConfig } : {}),
    });
  }

  /**
   * Logits `[B, T, vocab]` (float32). Differentiable and sync-free: call it inside
   * `tf.variableGrads`. `inputIds`, `attentionMask` and `positionIds` may be nested arrays or
   * int32 tensors (which are not disposed).
   */
  forward(inputs: ForwardInputs, options: ForwardOptions = {}): CausalLMForwardOutput {
    this.assertAlive();
    return tf.tidy(() => {
      const out = this.decoder.forwardHidden(inputs, options);
      const logits = this.decoder.logits(out.hidden);
      return out.hiddenStates ? { logits, hiddenStates: out.hiddenStates } : { logits };
    });
  }

  /**
   * One incremental decoding step (HF's forward with `past_key_values` and `use_cache`): the new
   * tokens run over the cache through the same layers and module slots as {@link forward}, so
   * wrapped projections (LoRA) count. Returns logits and a new, longer cache; the caller
   * disposes both and the old cache.
   * @throws ConfigError when a shape does not fit the cache.
   */
  forwardWithCache(inputs: CachedForwardInputs): CachedForwardOutput {
    this.assertAlive();
    const step = this.decoder.forwardWithPast({
      inputIds: inputs.inputIds,
      positionIds: inputs.positionIds,
      past: inputs.pastKeyValues?.layers ?? null,
      ...(inputs.attentionMask !== undefined ? { attentionMask: inputs.attentionMask } : {}),
      ...(inputs.lastPositionOnly !== undefined ? { lastPositionOnly: inputs.lastPositionOnly } : {}),
    });
    const logits = tf.tidy(() => this.decoder.logits(step.hidden));
    step.hidden.dispose();
    return { logits, pastKeyValues: new KVCache(step.presents) };
  }

  /**
   * Generate continuations with a KV cache, like transformers' `model.generate()`: greedy by
   * default, sampling with `doSample`; left-padded batches via `attentionMask`; per-row stop on
   * `eosTokenId`/`stopTokenIds` (default: `generation_config.json`'s eos). See the standalone
   * `generate` for the details.
   *
   * ```ts
   * const out = await model.generate([[1, 403, 407]], { maxNewTokens: 20 });
   * out.newTokens[0]; // the 20 greedy ids
   * ```
   */
  generate(inputIds: IntMatrix, options: GenerateOptions = {}): Promise<GenerateOutput> {
    this.assertAlive();
    return generate(this, inputIds, options);
  }

  /**
   * {@link generate}, yielding each step's tokens as they are chosen (for CLIs and web pages); the
   * iterator's return value is the whole output. See the standalone `generateStream`.
   *
   * ```ts
   * for await (const { tokens } of model.generateStream([[1, 403, 407]], { maxNewTokens: 20 })) console.log(tokens[0]);
   * ```
   */
  generateStream(
    inputIds: IntMatrix,
    options: GenerateOptions = {},
  ): AsyncGenerator<GenerationStep, GenerateOutput, undefined> {
    this.assertAlive();
    return generateStream(this, inputIds, options);
  }

  /**
   * The native decode step as a session for `generate()` (`batch` rows, up to `capacity` columns) when it
   * applies here (the fast path, `decoder.useNativeGeneration`), else undefined: `generate()` then runs
   * {@link forwardWithCache}.
   */
  startDecoding(batch: number, capacity: number): DecodingSession | undefined {
    this.assertAlive();
    return this.decoder.startDecoding(batch, capacity);
  }

  /** Final-normed hidden states `[B, T, hidden]` (input of value / reward heads). Differentiable. */
  forwardHidden(inputs: ForwardInputs): tf.Tensor3D {
    this.assertAlive();
    return this.decoder.forwardHidden(inputs).hidden;
  }

  /**
   * Per-row log-probabilities of `labels` through the decoder's accelerator, the native fused decoder
   * (core's `DirectTokenLogProbsLM` capability, used by `tryFusedSequenceLogProbs`), or `undefined` when it
   * does not apply here (another backend, no native addon, a wrapped projection).
   */
  directTokenLogProbs(
    inputs: ForwardInputs,
    labels: tf.Tensor2D,
    options: { withStats?: boolean },
  ): { logProbs: tf.Tensor1D; stats?: tf.Tensor2D } | undefined {
    this.assertAlive();
    return this.decoder.acceleratedTokenLogProbs(inputs, labels, options.withStats === true);
  }

  /**
   * `lm_head.weight` `[vocab, hidden]` (the embedding when tied), such that
   * `forward(x).logits = forwardHidden(x) · lmHeadWeight()ᵀ`; `undefined` when the `lm_head` slot
   * holds a wrapper (LoRA, AMP) or has a bias, so callers fall back to {@link forward}. Owned by the model.
   */
  lmHeadWeight(): tf.Tensor2D | undefined {
    this.assertAlive();
    const head = this.decoder.lmHead;
    return head instanceof Linear && head.bias === null ? (head.weight as tf.Tensor2D) : undefined;
  }

  /**
   * Summed, counted and mean log-probs of the completion tokens (core's `sequenceLogProbs` result, with
   * the same causal shift), through core's `tryFusedSequenceLogProbs` when it applies (the native fused
   * pass, or the chunked head over {@link lmHeadWeight}), else through {@link forward}. Differentiable; the caller owns the tensors.
   * `options.withStats` (fused path only) adds per-position mean logit, entropy and argmax hit.
   * @param inputIds token ids `[B, T]`.
   * @param completionMask `[B, T]`, 1 on completion tokens.
   */
  completionLogProbs(
    inputIds: IntMatrix,
    completionMask: IntMatrix,
    options: FusedSequenceLogProbsOptions = {},
  ): FusedSequenceLogProbs {
    this.assertAlive();
    const fused = tryFusedSequenceLogProbs(this, inputIds, completionMask, options);
    if (fused !== undefined) return fused;
    return tf.tidy(() => {
      const logits = this.forward({
        inputIds,
        ...(options.attentionMask !== undefined ? { attentionMask: options.attentionMask } : {}),
        ...(options.positionIds !== undefined ? { positionIds: options.positionIds } : {}),
      }).logits;
      return { ...sequenceLogProbs(logits, inputIds, completionMask) };
    });
  }

  /** Every variable by parameter name (HF names; wrappers' extra variables included). */
  namedParameters(): Map<string, tf.Variable> {
    return this.decoder.namedParameters();
  }

  /**
   * Variables with `trainable = true` (set `variable.trainable = false` to freeze one). A model loaded in
   * 16 bits first gives each 16-bit weight still marked trainable its float32 master (see
   * {@link halfPrecisionWeights}); freeze those (`trainable = false`) to keep them 16-bit.
   * @throws ConfigError when a trainable 16-bit weight sits under a wrapper (freeze it first).
   */
  trainableVariables(): tf.Variable[] {
    this.assertAlive();
    this.weights.materializeTrainable((name, master) => this.decoder.replaceWeight(name, master));
    return [...new Set(this.namedParameters().values())].filter((v) => v.trainable);
  }

  /**
   * The weights currently stored in 16 bits (empty for a float32 model), by HF name: not variables and not
   * in {@link namedParameters}. Each has a `trainable` flag: true after loading, so that full fine-tuning
   * trains them (through float32 masters made by {@link trainableVariables}); LoRA sets it false.
   */
  halfPrecisionWeights(): Map<string, HalfPrecisionWeight> {
    return this.weights.halfPrecision();
  }

  /** Every projection by HF module name; see `LinearModule` for the plugin seam. */
  linearModules(): Map<string, LinearModule> {
    return this.decoder.linearModules();
  }

  /**
   * Replace the projection `name` by `wrap(current)` (LoRA, quantised or 16-bit-stored weights).
   * @throws ConfigError if there is no projection with that name.
   */
  replaceLinear(name: string, wrap: (current: LinearModule) => LinearModule): LinearModule {
    return this.decoder.replaceLinear(name, wrap);
  }

  /**
   * Write a HF directory loadable by transformers' `from_pretrained`, as `save_pretrained` does:
   * `config.json` (float fields as floats), `model.safetensors` (base weights under HF names; a tied
   * model has no `lm_head.weight`), `generation_config.json` when the model has one, and the tokenizer
   * files of `tokenizerFilesFrom` (default: the directory the model was loaded from). Wrapper variables
   * (e.g. LoRA) are not written: merge them first.
   *
   * Each file is replaced atomically (temporary file, then rename). Nothing else in `dir` is deleted or
   * changed, except what this save makes stale: an earlier sharded save's `model.safetensors.index.json`
   * and `model-0000i-of-0000n.safetensors`. Saving into the directory the model was loaded from, or into a
   * run directory, keeps every other file. Weights holding NaN or Infinity are refused before anything is
   * written.
   *
   * A model loaded in 16 bits writes its weights in their dtype by default (see
   * {@link SavePretrainedOptions.dtype}): an untouched bf16 tensor is written byte for byte as it was read.
   * @param dir - the directory (created if missing).
   * @param options - storage dtype and tokenizer source.
   * @throws CheckpointError when a weight is not finite or `dir` cannot be written (naming the file).
   */
  async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    this.assertAlive();
    const names = expectedWeightShapes(this.decoderConfig).keys();
    await savePretrainedDirectory(dir, {
      config: this.config,
      ...this.weights.tensorsForSave(names, options.dtype),
      generationConfig: this.generationConfig,
      tokenizerFilesFrom: options.tokenizerFilesFrom ?? this.sourceDir,
    });
  }

  /**
   * A new model with copies of the current base weights, every weight frozen (`trainable = false`): the
   * default DPO/PPO reference model. The copy of a 16-bit model is 16-bit: its 16-bit weights share the
   * policy's bits (no copy, no float32 detour; they are never written in place), and float32 masters are
   * rounded to the model's dtype (exact while untouched). Wrappers installed with {@link replaceLinear}
   * (e.g. LoRA, 16-bit storage) are not copied; merge them first if they should count. The copy computes
   * as this model does ({@link computeDtype}), as a reference under PyTorch's autocast would.
   */
  frozenCopy(): PreTrainedModelForCausalLM {
    this.assertAlive();
    const names = expectedWeightShapes(this.decoderConfig).keys();
    const copy = new PreTrainedModelForCausalLM(
      this.config,
      this.decoderConfig,
      this.weights.copy({ trainable: false, names }),
      {
        ...(this.generationConfig !== undefined ? { generationConfig: this.generationConfig } : {}),
        ...(this.sourceDir !== undefined ? { sourceDir: this.sourceDir } : {}),
      },
    );
    copy.computeDtype = this.computeDtype;
    return copy;
  }

  /** Dispose every variable this model created and its constant tables. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.weights.dispose();
    this.decoder.disposeConstants();
  }

  private assertAlive(): void {
    if (this.disposed) throw new ConfigError("the model has been disposed");
  }
}
