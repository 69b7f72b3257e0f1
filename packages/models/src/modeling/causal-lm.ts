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
  fusedSequenceLogProbs,
  type GenerateOutput,
  type Generator,
  type HiddenStatesLM,
  type IntMatrix,
  Rng,
  sequenceLogProbs,
  tf,
} from "@prefkit/core";
import { generate } from "../generation/generate.js";
import {
  type CachedForwardInputs,
  type CachedForwardOutput,
  type IncrementalCausalLM,
  KVCache,
} from "../generation/kv-cache.js";
import { loadCheckpointWeights, SAFETENSORS_WEIGHTS_NAME } from "../io/checkpoint.js";
import {
  type GenerationConfig,
  type PretrainedConfig,
  readGenerationConfig,
  validateModelConfig,
} from "../io/config/index.js";
import type { SafetensorsDtype, TensorRecord } from "../io/safetensors/index.js";
import { adapterFor } from "./adapters/index.js";
import type { DecoderConfig } from "./config.js";
import { Decoder } from "./decoder/decoder.js";
import { DecoderModel } from "./decoder-model.js";
import { Linear, type LinearModule } from "./decoder/linear.js";
import {
  copyOfWeights,
  expectedWeightShapes,
  initialWeights,
  validateWeights,
  variablesFromWeights,
} from "./decoder/weights.js";
import { nativeDecoderAccelerator } from "./native/accelerator.js";
import { activateBackend, readPretrainedConfig, savePretrainedDirectory } from "./pretrained-directory.js";

/** Options of {@link PreTrainedModelForCausalLM.fromPretrained}. */
export interface FromPretrainedOptions {
  /**
   * Compute and storage dtype of the variables. Only `"float32"` (the default): bf16/f16
   * checkpoints are upcast on load; 16-bit storage of frozen weights is the AMP plugin's job.
   */
  dtype?: "float32";
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
  /** Storage dtype of `model.safetensors` (`torch_dtype` in config.json follows). Default `"F32"`. */
  dtype?: Extract<SafetensorsDtype, "F32" | "BF16" | "F16">;
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
  implements CausalLM, FrozenCopyable, Generator, IncrementalCausalLM, HiddenStatesLM
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
  private readonly ownVariables: Map<string, tf.Variable>;
  private disposed = false;

  /**
   * Build from already validated, sanitized weights. Prefer {@link fromPretrained} or
   * {@link fromConfig}; this constructor checks the weights once more and copies them into variables.
   * @throws ConfigError naming a missing, unexpected or mis-shaped tensor.
   */
  constructor(
    config: PretrainedConfig,
    decoderConfig: DecoderConfig,
    weights: ReadonlyMap<string, Pick<TensorRecord, "shape" | "data">>,
    extras: { generationConfig?: GenerationConfig; sourceDir?: string; file?: string } = {},
  ) {
    super();
    validateWeights(decoderConfig, weights, extras.file);
    this.config = config;
    this.decoderConfig = decoderConfig;
    this.generationConfig = extras.generationConfig;
    this.sourceDir = extras.sourceDir;
    this.ownVariables = variablesFromWeights(weights);
    this.decoder = new Decoder(decoderConfig, this.ownVariables, nativeDecoderAccelerator);
  }

  /**
   * Load a HF model directory (`config.json`, `model.safetensors` or sharded, optional
   * `generation_config.json`), like transformers' `from_pretrained`.
   * @throws ConfigError for an unsupported `model_type` (listing the supported ones), a bad
   *   config field, or weights that do not match the config (naming the tensor).
   * @throws CheckpointError for unreadable or malformed files.
   */
  static async fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<PreTrainedModelForCausalLM> {
    if (options.dtype !== undefined && options.dtype !== "float32") {
      throw new ConfigError(`unsupported dtype ${JSON.stringify(options.dtype)}; only "float32"`, { field: "dtype" });
    }
    await activateBackend(options.backend);
    const { config, adapter, decoderConfig } = await readPretrainedConfig(dir);
    const checkpoint = await loadCheckpointWeights(dir);
    const weights = adapter.sanitize(checkpoint.tensors, decoderConfig);
    const generationConfig = await readGenerationConfig(dir);
    return new PreTrainedModelForCausalLM(config, decoderConfig, weights, {
      sourceDir: dir,
      file: join(dir, SAFETENSORS_WEIGHTS_NAME),
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

  /** Final-normed hidden states `[B, T, hidden]` (input of value / reward heads). Differentiable. */
  forwardHidden(inputs: ForwardInputs): tf.Tensor3D {
    this.assertAlive();
    return this.decoder.forwardHidden(inputs).hidden;
  }

  /**
   * Per-row log-probabilities of `labels` through the decoder's accelerator, the native fused decoder
   * (core's `DirectTokenLogProbsLM` capability, used by `fusedSequenceLogProbs`), or `undefined` when it
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
   * the same causal shift), through the chunked fused head (`fusedSequenceLogProbs`) when
   * {@link lmHeadWeight} is defined, else through {@link forward}. Differentiable; the caller owns the tensors.
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
    if (this.lmHeadWeight() !== undefined) return fusedSequenceLogProbs(this, inputIds, completionMask, options);
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

  /** Variables with `trainable = true` (set `variable.trainable = false` to freeze one). */
  trainableVariables(): tf.Variable[] {
    return [...new Set(this.namedParameters().values())].filter((v) => v.trainable);
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
   * @param dir - the directory (created if missing).
   * @param options - storage dtype and tokenizer source.
   * @throws CheckpointError when a weight is not finite or `dir` cannot be written (naming the file).
   */
  async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    this.assertAlive();
    const names = [...expectedWeightShapes(this.decoderConfig).keys()];
    await savePretrainedDirectory(dir, {
      config: this.config,
      weights: names.map((name) => [name, this.ownVariables.get(name)!] as const),
      dtype: options.dtype ?? "F32",
      generationConfig: this.generationConfig,
      tokenizerFilesFrom: options.tokenizerFilesFrom ?? this.sourceDir,
    });
  }

  /**
   * A new model with copies of the current base weights, every variable frozen
   * (`trainable = false`): the default DPO/PPO reference model. Wrappers installed with
   * {@link replaceLinear} (e.g. LoRA, 16-bit storage) are not copied; merge them first if they should
   * count. The copy computes as this model does ({@link computeDtype}), as a reference under PyTorch's
   * autocast would.
   */
  frozenCopy(): PreTrainedModelForCausalLM {
    this.assertAlive();
    const names = [...expectedWeightShapes(this.decoderConfig).keys()];
    const weights = copyOfWeights(names.map((name) => [name, this.ownVariables.get(name)!] as const));
    const copy = new PreTrainedModelForCausalLM(this.config, this.decoderConfig, weights, {
      ...(this.generationConfig !== undefined ? { generationConfig: this.generationConfig } : {}),
      ...(this.sourceDir !== undefined ? { sourceDir: this.sourceDir } : {}),
    });
    for (const v of copy.ownVariables.values()) v.trainable = false;
    copy.computeDtype = this.computeDtype;
    return copy;
  }

  /** Dispose every variable this model created and its constant tables. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.ownVariables.values()) v.dispose();
    this.decoder.disposeConstants();
  }

  private assertAlive(): void {
    if (this.disposed) throw new ConfigError("the model has been disposed");
  }
}
