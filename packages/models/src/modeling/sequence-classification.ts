/**
 * `PreTrainedModelForSequenceClassification`: the shared decoder body plus a `score` head read at
 * the last real token of each row (HF `*ForSequenceClassification`), the model behind reward and
 * value models.
 * @module
 */
import { join } from "node:path";
import {
  ConfigError,
  type ForwardInputs,
  type HalfPrecisionWeights,
  type IntMatrix,
  Rng,
  type SequenceClassifier,
  type SequenceClassifierOutput,
  tf,
} from "@prefkit/core";
import { SAFETENSORS_WEIGHTS_NAME } from "../io/checkpoint.js";
import { type PretrainedConfig, validateModelConfig } from "../io/config/index.js";
import { adapterFor } from "./adapters/index.js";
import type { PreTrainedModelForCausalLM, SavePretrainedOptions } from "./causal-lm.js";
import type { DecoderConfig } from "./config.js";
import { Decoder } from "./decoder/decoder.js";
import type { HalfPrecisionWeight } from "./decoder/half-precision.js";
import { DecoderModel } from "./decoder-model.js";
import { Linear, type LinearModule } from "./decoder/linear.js";
import { expectedWeightShapes, initialWeights, validateWeights } from "./decoder/weights.js";
import { type ModelDtype, ModelWeights, type WeightSource } from "./model-weights.js";
import { nativeDecoderAccelerator } from "./native/accelerator.js";
import {
  activateBackend,
  type LoadDtype,
  readPretrainedConfig,
  readPretrainedWeights,
  savePretrainedDirectory,
} from "./pretrained-directory.js";
import { classifierConfig, headInit, labelCount } from "./score-head.js";

/** HF tensor name of the classification head. */
export const SCORE_WEIGHT_NAME = "score.weight";

/** Options shared by the constructors of {@link PreTrainedModelForSequenceClassification}. */
export interface SequenceClassificationOptions {
  /**
   * Outputs of the `score` head (1 for a reward or value model). Default: the config's `num_labels`
   * or the size of its `id2label`, else 2 (transformers' default).
   */
  numLabels?: number;
  /** Seed of the head initialisation (and of the body for `fromConfig`). Default 42. */
  seed?: number;
  /** Sets `config.pad_token_id` (transformers needs it to batch). Default: keep the config's. */
  padTokenId?: number;
}

/** Options of {@link PreTrainedModelForSequenceClassification.fromPretrained}. */
export interface SequenceClassificationFromPretrainedOptions extends SequenceClassificationOptions {
  /** TensorFlow.js backend to activate first. Default: keep the current one. */
  backend?: string;
  /**
   * The dtype the weights are loaded and kept in, as for causal LMs (`FromPretrainedOptions.dtype`): with
   * `"bfloat16"`/`"float16"` the body's projections and embedding stay 16-bit (frozen under LoRA), while the
   * `score` head is always a float32 variable (it trains; a fresh head is rounded to the dtype like every
   * other value). `"auto"` follows `config.json`'s `torch_dtype`.
   * @defaultValue `"float32"`
   */
  dtype?: LoadDtype;
}

function toInt(m: IntMatrix): tf.Tensor2D {
  if (Array.isArray(m)) return tf.tensor2d(m.flat(), [m.length, m.length > 0 ? m[0]!.length : 0], "int32");
  return m.dtype === "int32" ? m : tf.cast(m, "int32");
}

/**
 * A sequence classifier (Llama, Qwen2, Qwen3, Mistral, SmolLM, ...): the causal LM's decoder body
 * without `lm_head`, plus `score` (Linear hidden → numLabels, no bias), read at the last real token of
 * each row, found from the attention mask, so left padding, right padding and pad = eos all work.
 *
 * ```ts
 * const rm = await AutoModelForSequenceClassification.fromPretrained("./stories260K", { numLabels: 1, seed: 0 });
 * const { logits } = rm.forward({ inputIds, attentionMask }); // [B, 1]
 * ```
 */
export class PreTrainedModelForSequenceClassification
  extends DecoderModel
  implements SequenceClassifier, HalfPrecisionWeights
{
  /** The HF config as `savePretrained` writes it (`architectures`, `id2label`, `label2id`, `pad_token_id`). */
  readonly config: PretrainedConfig;
  /** The decoder flags (with tied embeddings: the body never uses `lm_head`). */
  readonly decoderConfig: DecoderConfig;
  /** The decoder body (its `lm_head` slot is unused). */
  override readonly decoder: Decoder;
  /** Outputs of the `score` head. */
  readonly numLabels: number;
  /** Directory the model was loaded from (tokenizer files are copied from there on save). */
  readonly sourceDir: string | undefined;
  /** The `score` head slot (a {@link LinearModule}; LoRA may wrap it). */
  score: LinearModule;
  /** The model's own weights by HF name (float32 variables and 16-bit storage) and its dtype. */
  readonly weights: ModelWeights;
  private disposed = false;

  /**
   * Build from validated weights: every body tensor of `expectedWeightShapes` (without `lm_head`) plus
   * `score.weight` `[numLabels, hidden]`. Prefer {@link fromPretrained}, {@link fromConfig} or {@link fromCausalLM}.
   * With `extras.dtype` 16-bit the body is stored as `fromPretrained`'s `dtype` describes; a
   * {@link ModelWeights} is taken over as is.
   * @throws ConfigError naming a missing, unexpected or mis-shaped tensor.
   */
  constructor(
    config: PretrainedConfig,
    decoderConfig: DecoderConfig,
    weights: ReadonlyMap<string, WeightSource> | ModelWeights,
    extras: { sourceDir?: string; file?: string; numLabels: number; dtype?: ModelDtype },
  ) {
    super();
    const body = new Map<string, { shape: number[] }>(weights instanceof ModelWeights ? weights.shapes() : weights);
    const score = body.get(SCORE_WEIGHT_NAME);
    body.delete(SCORE_WEIGHT_NAME);
    const bodyConfig: DecoderConfig = { ...decoderConfig, tieWordEmbeddings: true };
    validateWeights(bodyConfig, body, extras.file);
    if (!score) throw new ConfigError("missing tensor", { file: extras.file, tensor: SCORE_WEIGHT_NAME });
    const want = [extras.numLabels, decoderConfig.hiddenSize];
    if (score.shape.length !== 2 || score.shape[0] !== want[0] || score.shape[1] !== want[1]) {
      throw new ConfigError(
        `wrong shape [${score.shape.join(", ")}], expected [${want.join(", ")}] (numLabels, hidden)`,
        {
          file: extras.file,
          tensor: SCORE_WEIGHT_NAME,
        },
      );
    }
    this.config = config;
    this.decoderConfig = bodyConfig;
    this.numLabels = extras.numLabels;
    this.sourceDir = extras.sourceDir;
    this.weights =
      weights instanceof ModelWeights ? weights : ModelWeights.fromTensors(weights, extras.dtype ?? "float32");
    this.decoder = new Decoder(bodyConfig, this.weights.all(), nativeDecoderAccelerator);
    this.score = new Linear("score", this.weights.variables().get(SCORE_WEIGHT_NAME)!);
  }

  /** The dtype the weights were loaded in; `"float32"` unless loaded in 16 bits. */
  get dtype(): ModelDtype {
    return this.weights.dtype;
  }

  /**
   * Load a HF directory. A sequence-classification checkpoint (with `score.weight`) loads as is; a
   * causal-LM checkpoint gets a fresh head, N(0, initializer_range²) from `seed` (HF's `_init_weights`),
   * and its `lm_head.weight` is dropped.
   * @throws ConfigError for an unsupported family, bad config, mismatched weights, or a `score.weight`
   *   whose rows differ from `numLabels`.
   * @throws CheckpointError for unreadable files.
   */
  static async fromPretrained(
    dir: string,
    options: SequenceClassificationFromPretrainedOptions = {},
  ): Promise<PreTrainedModelForSequenceClassification> {
    await activateBackend(options.backend);
    const parts = await readPretrainedConfig(dir);
    const { config: raw, configFile, adapter, decoderConfig } = parts;
    const numLabels = labelCount(raw, options.numLabels, configFile);
    const { dtype, checkpoint } = await readPretrainedWeights(dir, parts, options.dtype);
    const score = checkpoint.tensors.get(SCORE_WEIGHT_NAME);
    const rest = new Map(checkpoint.tensors);
    rest.delete(SCORE_WEIGHT_NAME);
    rest.delete("lm_head.weight");
    const weights: Map<string, WeightSource> = adapter.sanitize(rest, {
      ...decoderConfig,
      tieWordEmbeddings: true,
    });
    weights.set(
      SCORE_WEIGHT_NAME,
      score ??
        headInit(numLabels, decoderConfig.hiddenSize, decoderConfig.initializerRange, new Rng(options.seed ?? 42)),
    );
    return new PreTrainedModelForSequenceClassification(
      classifierConfig(raw, numLabels, options.padTokenId),
      decoderConfig,
      weights,
      { sourceDir: dir, file: join(dir, SAFETENSORS_WEIGHTS_NAME), numLabels, dtype },
    );
  }

  /**
   * A randomly initialised classifier (body as `AutoModelForCausalLM.fromConfig` with the same seed,
   * then the head from the same generator).
   */
  static fromConfig(
    config: Record<string, unknown>,
    options: SequenceClassificationOptions = {},
  ): PreTrainedModelForSequenceClassification {
    const validated = validateModelConfig(config);
    const decoderConfig = adapterFor(validated).decoderConfig(validated);
    const numLabels = labelCount(validated, options.numLabels);
    const rng = new Rng(options.seed ?? 42);
    const weights: Map<string, WeightSource> = initialWeights({ ...decoderConfig, tieWordEmbeddings: true }, rng);
    weights.set(SCORE_WEIGHT_NAME, headInit(numLabels, decoderConfig.hiddenSize, decoderConfig.initializerRange, rng));
    return new PreTrainedModelForSequenceClassification(
      classifierConfig(validated, numLabels, options.padTokenId),
      decoderConfig,
      weights,
      { numLabels },
    );
  }

  /**
   * A classifier whose body is a copy of a causal LM's current base weights (e.g. a value model on
   * the policy's body), with a fresh seeded head. LoRA wrappers are not copied: merge them first. The copy of
   * a 16-bit LM keeps its 16-bit weights (sharing their bits) and is trainable like a freshly loaded model.
   */
  static fromCausalLM(
    lm: PreTrainedModelForCausalLM,
    options: SequenceClassificationOptions = {},
  ): PreTrainedModelForSequenceClassification {
    const numLabels = labelCount(lm.config, options.numLabels);
    const names = expectedWeightShapes({ ...lm.decoderConfig, tieWordEmbeddings: true }).keys();
    const weights = lm.weights.copy({ trainable: true, names });
    const c = lm.decoderConfig;
    weights.add(SCORE_WEIGHT_NAME, headInit(numLabels, c.hiddenSize, c.initializerRange, new Rng(options.seed ?? 42)));
    return new PreTrainedModelForSequenceClassification(
      classifierConfig(lm.config, numLabels, options.padTokenId),
      c,
      weights,
      { numLabels, ...(lm.sourceDir !== undefined ? { sourceDir: lm.sourceDir } : {}) },
    );
  }

  /** `inputs` with `positionIds` derived from the mask when absent: cumsum(mask) − 1, clamped at 0. */
  private withPositions(inputs: ForwardInputs): ForwardInputs {
    if (inputs.positionIds !== undefined || inputs.attentionMask === undefined) return inputs;
    const mask = toInt(inputs.attentionMask);
    const positions = tf.cast(tf.relu(tf.sub(tf.cumsum(tf.cast(mask, "float32"), 1), 1)), "int32") as tf.Tensor2D;
    return { ...inputs, attentionMask: mask, positionIds: positions };
  }

  /** Final-normed hidden states `[B, T, hidden]` (positions from the mask, see {@link forward}). Differentiable. */
  forwardHidden(inputs: ForwardInputs): tf.Tensor3D {
    this.assertAlive();
    return tf.tidy(() => this.decoder.forwardHidden(this.withPositions(inputs)).hidden);
  }

  /**
   * Scores `[B, numLabels]` at the last real token of each row: the largest index where
   * `attentionMask` is 1 (the last column when there is no mask). Without `positionIds`, positions are
   * cumsum(mask) − 1, as TRL's `get_reward`, so a row's score does not depend on padding. Differentiable
   * and sync-free.
   */
  forward(inputs: ForwardInputs): SequenceClassifierOutput {
    this.assertAlive();
    return tf.tidy(() => {
      const ids = toInt(inputs.inputIds);
      const [b, t] = ids.shape;
      const mask = inputs.attentionMask !== undefined ? toInt(inputs.attentionMask) : null;
      const hidden = this.decoder.forwardHidden(
        this.withPositions({ ...inputs, inputIds: ids, ...(mask ? { attentionMask: mask } : {}) }),
      ).hidden;
      let last: tf.Tensor1D;
      if (mask) {
        const ranks = tf.mul(tf.cast(mask, "float32"), tf.add(tf.range(0, t, 1, "float32"), 1));
        last = tf.cast(tf.argMax(ranks, 1), "int32") as tf.Tensor1D;
      } else {
        last = tf.fill([b], t - 1, "int32") as tf.Tensor1D;
      }
      const select = tf.reshape(tf.cast(tf.oneHot(last, t), "float32"), [b, 1, t]) as tf.Tensor3D;
      const pooled = tf.reshape(tf.matMul(select, hidden), [b, this.decoderConfig.hiddenSize]);
      return { logits: this.score.apply(pooled) as tf.Tensor2D };
    });
  }

  /** Per-token scores `[B, T, numLabels]` (`score` on every hidden state; a value model's V). Differentiable. */
  forwardTokens(inputs: ForwardInputs): tf.Tensor3D {
    this.assertAlive();
    return tf.tidy(
      () => this.score.apply(this.decoder.forwardHidden(this.withPositions(inputs)).hidden) as tf.Tensor3D,
    );
  }

  /** Every variable by parameter name: `model.*`, `score.weight`, and wrappers' extras (e.g. LoRA). */
  namedParameters(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [k, v] of this.decoder.namedParameters()) if (!k.startsWith("lm_head.")) out.set(k, v);
    for (const [k, v] of this.score.parameters()) out.set(k, v);
    return out;
  }

  /**
   * Variables with `trainable = true`; a model loaded in 16 bits first gives each 16-bit weight still
   * marked trainable its float32 master (see `PreTrainedModelForCausalLM.trainableVariables`).
   * @throws ConfigError when a trainable 16-bit weight sits under a wrapper (freeze it first).
   */
  trainableVariables(): tf.Variable[] {
    this.assertAlive();
    this.weights.materializeTrainable((name, master) => this.decoder.replaceWeight(name, master));
    return [...new Set(this.namedParameters().values())].filter((v) => v.trainable);
  }

  /** The weights currently stored in 16 bits (empty for a float32 model), by HF name; see the causal LM's. */
  halfPrecisionWeights(): Map<string, HalfPrecisionWeight> {
    return this.weights.halfPrecision();
  }

  /** Every projection by HF module name: the body's attention/MLP projections and `score` (no `lm_head`). */
  linearModules(): Map<string, LinearModule> {
    const out = this.decoder.linearModules();
    out.delete("lm_head");
    out.set("score", this.score);
    return out;
  }

  /**
   * Replace the projection `name` (a body projection or `score`) by `wrap(current)`.
   * @throws ConfigError if there is no such projection (`lm_head` included: a classifier has none).
   */
  replaceLinear(name: string, wrap: (current: LinearModule) => LinearModule): LinearModule {
    if (name === "score") {
      this.score = wrap(this.score);
      return this.score;
    }
    if (name === "lm_head") {
      throw new ConfigError('a sequence classifier has no "lm_head" (see linearModules() for the names)', {
        field: name,
      });
    }
    return this.decoder.replaceLinear(name, wrap);
  }

  /**
   * Write what transformers' `*ForSequenceClassification.save_pretrained` writes: `config.json`
   * (`architectures`, `id2label`/`label2id`, `pad_token_id`), `model.safetensors` with `model.*` and
   * `score.weight` (no `lm_head`), and the tokenizer files of the source directory. No generation config
   * (a classifier does not generate). Wrapper variables (LoRA) are not written: merge them first.
   *
   * Each file is replaced atomically; nothing else in `dir` is deleted or changed except an earlier sharded
   * save's index and shards, which this save makes stale. Non-finite weights are refused before anything is
   * written.
   * @param dir - the directory (created if missing).
   * @param options - storage dtype and tokenizer source.
   * @throws CheckpointError when a weight is not finite or `dir` cannot be written (naming the file).
   */
  async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    this.assertAlive();
    await savePretrainedDirectory(dir, {
      config: this.config,
      ...this.weights.tensorsForSave(this.weights.all().keys(), options.dtype),
      tokenizerFilesFrom: options.tokenizerFilesFrom ?? this.sourceDir,
    });
  }

  /**
   * An independent copy of the current base weights (e.g. TRL's default value model, initialised from
   * the reward model). Wrappers (LoRA) are not copied. 16-bit weights share their bits (see
   * `PreTrainedModelForCausalLM.frozenCopy`).
   * @param options `trainable` (default true) of every copied weight.
   */
  copy(options: { trainable?: boolean } = {}): PreTrainedModelForSequenceClassification {
    this.assertAlive();
    const weights = this.weights.copy({ trainable: options.trainable ?? true });
    return new PreTrainedModelForSequenceClassification(this.config, this.decoderConfig, weights, {
      numLabels: this.numLabels,
      ...(this.sourceDir !== undefined ? { sourceDir: this.sourceDir } : {}),
    });
  }

  /** A copy with every variable frozen (`trainable = false`). */
  frozenCopy(): PreTrainedModelForSequenceClassification {
    return this.copy({ trainable: false });
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
