/**
 * `getPeftModel` and `PeftModel`: PEFT's LoRA on prefkit models. The adapted model implements core's
 * `CausalLM` (or `SequenceClassifier`) and `AdapterToggle`, so a DPO/PPO trainer uses "the same model with
 * adapters off" as its reference, and its `savePretrained` writes a PEFT adapter directory (also what a LoRA
 * run's checkpoints hold). The adapters are installed by `injection.ts` and written by `adapter-files.ts`.
 * @module
 */
import {
  type AdapterToggle,
  type CausalLM,
  type DirectTokenLogProbsLM,
  ConfigError,
  type ForwardInputs,
  type GenerateOptions,
  gradientCheckpointingOver,
  type GenerateOutput,
  type GenerationStep,
  hasHalfPrecisionWeights,
  type IntMatrix,
  isSequenceClassifier,
  type SequenceClassifier,
  type SequenceClassifierOutput,
  type StreamingGenerator,
  type tf,
} from "@prefkit/core";
import type { CachedForwardInputs, CachedForwardOutput } from "../generation/kv-cache.js";
import type { DecodingSession } from "../generation/session.js";
import type { PretrainedConfig } from "../io/config/index.js";
import type { CausalLMForwardOutput, ForwardOptions, PreTrainedModelForCausalLM } from "../modeling/causal-lm.js";
import type { DecoderComputeDtype } from "../modeling/decoder/accelerator.js";
import type { LinearModule } from "../modeling/decoder/linear.js";
import { DecoderModel } from "../modeling/decoder-model.js";
import type { PreTrainedModelForSequenceClassification } from "../modeling/sequence-classification.js";
import {
  adapterConfigJson,
  assignAdapterTensors,
  type PeftFromPretrainedOptions,
  type PeftSaveOptions,
  readAdapterDirectory,
  writeAdapterDirectory,
} from "./adapter-files.js";
import { type LoraConfig, PEFT_KEY_PREFIX, type ResolvedLoraConfig } from "./config.js";
import { type GetPeftModelOptions, InjectedAdapters, type LoraBaseModel, planAdapters } from "./injection.js";
import { type LoraDropoutMode, LoraLinear } from "./layer.js";

/** Parameter counts, as PEFT's `get_nb_trainable_parameters`. */
export interface TrainableParameterCounts {
  /** Elements of trainable variables (adapters and `modulesToSave` copies). */
  trainable: number;
  /** Elements of every variable (base, adapters, copies; a tied weight counted once). */
  all: number;
}

/**
 * A model with LoRA adapters (PEFT's `PeftModel`). Build one with {@link getPeftModel} or
 * {@link PeftModel.fromPretrained}. The base weights are frozen (`trainable = false`); only `lora_A`,
 * `lora_B` and the `modulesToSave` copies are trainable, so optimizers keep no slots for the base.
 *
 * Parameter names are PEFT's: `namedParameters()` prefixes the HF names with `base_model.model.`, so the
 * adapter tensors are named exactly as in `adapter_model.safetensors`
 * (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`, `base_model.model.score.weight`).
 */
export class PeftModel<M extends LoraBaseModel = LoraBaseModel> implements AdapterToggle {
  /** The wrapped model (its projections are now LoRA layers). */
  readonly baseModel: M;
  /** The resolved config (task type and base path filled in). */
  readonly peftConfig: ResolvedLoraConfig;
  /** HF module names that carry a LoRA layer, in model order. */
  readonly targetNames: readonly string[];
  /** HF module names trained in full and saved with the adapter. */
  readonly modulesToSaveNames: readonly string[];
  private readonly adapters: InjectedAdapters;
  private released = false;

  /**
   * Wrap `model` (use {@link getPeftModel}; this constructor is shared by the task-specific subclasses).
   * @throws ConfigError for a bad config, or target/`modulesToSave` names that match no projection.
   */
  constructor(model: M, config: LoraConfig, options: GetPeftModelOptions & { trainable?: boolean } = {}) {
    if (model instanceof PeftModel) throw new ConfigError("the model already has LoRA adapters", { field: "model" });
    if (typeof model?.linearModules !== "function" || typeof model.replaceLinear !== "function") {
      throw new ConfigError("LoRA needs a model with linearModules() and replaceLinear() (a prefkit model)", {
        field: "model",
      });
    }
    const plan = planAdapters(model, config);
    this.baseModel = model;
    this.peftConfig = plan.config;
    this.targetNames = plan.targetNames;
    this.modulesToSaveNames = plan.modulesToSaveNames;
    this.adapters = new InjectedAdapters(model, plan, options);
  }

  /** The base model's `config.json` content. */
  get config(): PretrainedConfig {
    return this.baseModel.config;
  }

  /** The base model's gradient checkpointing (PEFT forwards it to the base model, as here). */
  private readonly checkpointing = gradientCheckpointingOver(() => [this.baseModel]);
  /** Keep only each layer's input in training forward passes of the base model's fused decoder. */
  gradientCheckpointingEnable(): void {
    this.checkpointing.gradientCheckpointingEnable();
  }
  /** Keep every activation again. */
  gradientCheckpointingDisable(): void {
    this.checkpointing.gradientCheckpointingDisable();
  }
  /** Whether the base model checkpoints. */
  get isGradientCheckpointing(): boolean {
    return this.checkpointing.isGradientCheckpointing;
  }

  /**
   * What the base model's fused decoder computes its products in (`"float32"` or `"bfloat16"`; see
   * `Decoder.computeDtype`): LoRA's updates follow the base.
   * @throws ConfigError when the base model has no such setting.
   */
  get computeDtype(): DecoderComputeDtype {
    return (this.baseModel as Partial<DecoderModel>).computeDtype ?? "float32";
  }

  set computeDtype(dtype: DecoderComputeDtype) {
    if (!(this.baseModel instanceof DecoderModel)) {
      throw new ConfigError("the base model has no compute dtype to set (not a prefkit model)", {
        field: "computeDtype",
      });
    }
    this.baseModel.computeDtype = dtype;
  }

  /** True while adapters are enabled. */
  get adaptersEnabled(): boolean {
    return this.adapters.state.enabled;
  }

  /** When LoRA dropout applies; see {@link LoraDropoutMode}. */
  get dropoutMode(): LoraDropoutMode {
    return this.adapters.state.dropoutMode;
  }

  set dropoutMode(mode: LoraDropoutMode) {
    this.adapters.state.dropoutMode = mode;
  }

  /** The LoRA layers by HF module name. */
  loraModules(): Map<string, LoraLinear> {
    return new Map(this.adapters.loraLayers);
  }

  /** Switch the adapters (and `modulesToSave` copies) on. */
  enableAdapters(): void {
    this.adapters.state.enabled = true;
  }

  /** Switch the adapters off: the model computes exactly the base model. */
  disableAdapters(): void {
    this.adapters.state.enabled = false;
  }

  /**
   * Run `fn` with adapters disabled, then restore the previous state (also when `fn` throws, and, for a
   * promise, when it settles). This is core's `AdapterToggle`: the DPO/PPO reference without a copy.
   */
  withAdaptersDisabled<T>(fn: () => T): T {
    return this.adapters.withDisabled(fn);
  }

  /** Every variable by PEFT name (`base_model.model.` + HF name; see the class notes). */
  namedParameters(): Map<string, tf.Variable> {
    this.assertAlive();
    const out = new Map<string, tf.Variable>();
    for (const [k, v] of this.baseModel.namedParameters()) out.set(PEFT_KEY_PREFIX + k, v);
    return out;
  }

  /** The adapter variables and `modulesToSave` copies (empty after loading with `isTrainable: false`). */
  trainableVariables(): tf.Variable[] {
    return [...new Set(this.namedParameters().values())].filter((v) => v.trainable);
  }

  /** The projections (LoRA layers where installed), for plugins such as AMP's 16-bit storage. */
  linearModules(): Map<string, LinearModule> {
    return this.baseModel.linearModules();
  }

  /** Replace a projection of the base model (the LoRA layer itself when `name` is adapted). */
  replaceLinear(name: string, wrap: (current: LinearModule) => LinearModule): LinearModule {
    const next = this.baseModel.replaceLinear(name, wrap);
    if (this.adapters.loraLayers.has(name) && !(next instanceof LoraLinear)) {
      throw new ConfigError(`"${name}" carries a LoRA layer; replace its .base instead`, { field: name });
    }
    return next;
  }

  /** Parameter counts (PEFT's `get_nb_trainable_parameters`); a 16-bit base's weights count in `all`. */
  trainableParameterCounts(): TrainableParameterCounts {
    let trainable = 0;
    let all = 0;
    const half = hasHalfPrecisionWeights(this.baseModel) ? this.baseModel.halfPrecisionWeights().values() : [];
    for (const w of new Set<{ size: number; trainable: boolean }>([...this.namedParameters().values()])) {
      all += w.size;
      if (w.trainable) trainable += w.size;
    }
    for (const w of new Set(half)) {
      const size = w.shape.reduce((a, d) => a * d, 1);
      all += size;
      if (w.trainable) trainable += size;
    }
    return { trainable, all };
  }

  /**
   * Print PEFT's line, e.g. `trainable params: 4,096 || all params: 296,128 || trainable%: 1.3832`, and
   * return it.
   * @param log where to print (default `console.log`).
   */
  printTrainableParameters(log: (line: string) => void = console.log): string {
    const { trainable, all } = this.trainableParameterCounts();
    const fmt = (n: number) => n.toLocaleString("en-US");
    const line = `trainable params: ${fmt(trainable)} || all params: ${fmt(all)} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
    log(line);
    return line;
  }

  /**
   * The tensors PEFT's `get_peft_model_state_dict` returns: every `lora_A`/`lora_B` and `modulesToSave`
   * copy, keyed as in `adapter_model.safetensors`.
   */
  adapterStateDict(): Map<string, tf.Variable> {
    this.assertAlive();
    return this.adapters.stateDict();
  }

  /** The `adapter_config.json` content {@link savePretrained} writes. */
  adapterConfigJson(options: PeftSaveOptions = {}): Record<string, unknown> {
    return adapterConfigJson(this.peftConfig, options);
  }

  /**
   * Write a PEFT adapter directory, as PEFT's `save_pretrained`: `adapter_config.json` and
   * `adapter_model.safetensors` (float32, metadata `format: pt`) with only the adapter and `modulesToSave`
   * tensors. This is also what the trainer's checkpoints hold for a LoRA run. Use {@link mergeAndUnload}
   * and the base model's `savePretrained` for a full HF model.
   *
   * Each of the two files is replaced atomically (temporary file, then rename); nothing else in `dir` is
   * deleted or changed. Adapter weights holding NaN or Infinity are refused before anything is written.
   * @param dir - the adapter directory (created if missing).
   * @param options - `baseModelNameOrPath` for the config.
   * @throws CheckpointError when a weight is not finite or `dir` cannot be written (naming the file).
   */
  async savePretrained(dir: string, options: PeftSaveOptions = {}): Promise<void> {
    this.assertAlive();
    await writeAdapterDirectory(dir, this.adapterStateDict(), this.adapterConfigJson(options));
  }

  /**
   * Fold every LoRA update into its base weight (`W += scaling·B·A`), put the `modulesToSave` copies in
   * place of the originals, remove the wrappers and return the base model (PEFT's `merge_and_unload`).
   * The base variables get back the `trainable` flags they had before {@link getPeftModel}. This PeftModel
   * is unusable afterwards.
   * @throws ConfigError when a base projection is not a float32 {@link Linear} (e.g. under 16-bit
   *   storage, which has no float32 master weight to merge into), or is tied to the embeddings.
   */
  mergeAndUnload(): M {
    this.assertAlive();
    this.adapters.merge(this.baseModel);
    return this.release();
  }

  /** Remove every wrapper without merging and return the untouched base model (PEFT's `unload`). */
  unload(): M {
    this.assertAlive();
    this.adapters.remove(this.baseModel);
    return this.release();
  }

  /** Free the adapters AND the base model (the PeftModel owns it, as in PEFT). Idempotent. */
  dispose(): void {
    if (this.released) return;
    this.adapters.dispose();
    this.released = true;
    this.baseModel.dispose();
  }

  private release(): M {
    this.adapters.release();
    this.released = true;
    return this.baseModel;
  }

  protected assertAlive(): void {
    if (this.released) throw new ConfigError("this PeftModel was unloaded or disposed");
  }

  /**
   * Load a PEFT adapter directory (written by PEFT or by prefkit) onto `baseModel`, as PEFT's
   * `PeftModel.from_pretrained(base_model, adapter_dir)`.
   * @throws ConfigError for an `adapter_config.json` prefkit cannot honour (naming the field).
   * @throws CheckpointError for unreadable files, or a tensor that is missing, unexpected or mis-shaped
   *   (naming the file and tensor).
   */
  static async fromPretrained(
    baseModel: PreTrainedModelForSequenceClassification,
    adapterDir: string,
    options?: PeftFromPretrainedOptions,
  ): Promise<PeftModelForSequenceClassification>;
  static async fromPretrained(
    baseModel: PreTrainedModelForCausalLM,
    adapterDir: string,
    options?: PeftFromPretrainedOptions,
  ): Promise<PeftModelForCausalLM>;
  static async fromPretrained(
    baseModel: LoraBaseModel,
    adapterDir: string,
    options: PeftFromPretrainedOptions = {},
  ): Promise<PeftModel> {
    const { config, tensors, weightsFile } = await readAdapterDirectory(adapterDir);
    const model = wrap(baseModel, config, { ...options, trainable: options.isTrainable ?? false });
    try {
      await model.loadAdapterWeights(tensors, weightsFile);
    } catch (e) {
      model.unload();
      throw e;
    }
    return model;
  }

  /**
   * Assign adapter tensors by PEFT key (as read from `adapter_model.safetensors`).
   * @throws CheckpointError naming `file` and the tensor for a missing, unexpected or mis-shaped tensor.
   */
  async loadAdapterWeights(
    tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
    file: string,
  ): Promise<void> {
    assignAdapterTensors(this.adapterStateDict(), tensors, file);
  }
}

/** A causal LM with LoRA adapters (PEFT's `PeftModelForCausalLM`): core's `CausalLM` and `AdapterToggle`. */
export class PeftModelForCausalLM
  extends PeftModel<PreTrainedModelForCausalLM>
  implements CausalLM, StreamingGenerator, AdapterToggle, DirectTokenLogProbsLM
{
  /** Logits `[B, T, vocab]` through the adapted projections. Differentiable. */
  forward(inputs: ForwardInputs, options: ForwardOptions = {}): CausalLMForwardOutput {
    this.assertAlive();
    return this.baseModel.forward(inputs, options);
  }

  /** Final-normed hidden states `[B, T, hidden]`. Differentiable. */
  forwardHidden(inputs: ForwardInputs): tf.Tensor3D {
    this.assertAlive();
    return this.baseModel.forwardHidden(inputs);
  }

  /**
   * Per-row log-probabilities of `labels` through the base model's native fused pass, adapters included
   * (core's `DirectTokenLogProbsLM`; see the base model's), or `undefined` when it does not apply here.
   */
  directTokenLogProbs(
    inputs: ForwardInputs,
    labels: tf.Tensor2D,
    options: { withStats?: boolean },
  ): { logProbs: tf.Tensor1D; stats?: tf.Tensor2D } | undefined {
    this.assertAlive();
    return this.baseModel.directTokenLogProbs(inputs, labels, options);
  }

  /**
   * The LM head weight for the fused log-prob path (see the base model's); `undefined` when `lm_head`
   * itself is adapted, so trainers fall back to {@link forward}.
   */
  lmHeadWeight(): tf.Tensor2D | undefined {
    this.assertAlive();
    return this.baseModel.lmHeadWeight();
  }

  /** One incremental step with a KV cache, through the adapted projections (see the base model's). */
  forwardWithCache(inputs: CachedForwardInputs): CachedForwardOutput {
    this.assertAlive();
    return this.baseModel.forwardWithCache(inputs);
  }

  /**
   * Generate with the KV cache, through the adapted projections (adapters as currently enabled),
   * with the options of `PreTrainedModelForCausalLM.generate`.
   */
  generate(inputIds: IntMatrix, options: GenerateOptions = {}): Promise<GenerateOutput> {
    this.assertAlive();
    return this.baseModel.generate(inputIds, options);
  }

  /** {@link generate} yielding each step's tokens as they come (see the base model's). */
  generateStream(
    inputIds: IntMatrix,
    options: GenerateOptions = {},
  ): AsyncGenerator<GenerationStep, GenerateOutput, undefined> {
    this.assertAlive();
    return this.baseModel.generateStream(inputIds, options);
  }

  /** The base model's native decoding session, through the adapted projections (see the base model's). */
  startDecoding(batch: number, capacity: number): DecodingSession | undefined {
    this.assertAlive();
    return this.baseModel.startDecoding(batch, capacity);
  }
}

/**
 * A sequence classifier (reward / value model) with LoRA adapters (PEFT's
 * `PeftModelForSequenceClassification`): core's `SequenceClassifier` and `AdapterToggle`. `score` is
 * always in `modulesToSave`.
 */
export class PeftModelForSequenceClassification
  extends PeftModel<PreTrainedModelForSequenceClassification>
  implements SequenceClassifier, AdapterToggle
{
  /** Outputs of the `score` head. */
  get numLabels(): number {
    return this.baseModel.numLabels;
  }

  /** Scores `[B, numLabels]` at the last real token of each row. Differentiable. */
  forward(inputs: ForwardInputs): SequenceClassifierOutput {
    this.assertAlive();
    return this.baseModel.forward(inputs);
  }

  /** Per-token scores `[B, T, numLabels]`. Differentiable. */
  forwardTokens(inputs: ForwardInputs): tf.Tensor3D {
    this.assertAlive();
    return this.baseModel.forwardTokens(inputs);
  }

  /** Final-normed hidden states `[B, T, hidden]`. Differentiable. */
  forwardHidden(inputs: ForwardInputs): tf.Tensor3D {
    this.assertAlive();
    return this.baseModel.forwardHidden(inputs);
  }
}

function wrap(
  model: LoraBaseModel,
  config: LoraConfig,
  options: GetPeftModelOptions & { trainable?: boolean },
): PeftModel {
  return isSequenceClassifier(model)
    ? new PeftModelForSequenceClassification(model as PreTrainedModelForSequenceClassification, config, options)
    : new PeftModelForCausalLM(model as PreTrainedModelForCausalLM, config, options);
}

/**
 * PEFT's `get_peft_model`: freeze `model`, add LoRA layers to the projections `config.targetModules`
 * selects (A Kaiming-uniform from `seed`, B zero, so the result starts equal to the base), and trainable
 * copies of `modulesToSave`.
 *
 * ```ts no-run
 * const peft = getPeftModel(model, { r: 16, loraAlpha: 32, loraDropout: 0.05, targetModules: ["q_proj", "v_proj"] }, { seed: 0 });
 * peft.printTrainableParameters();
 * ```
 * @throws ConfigError for a bad config (naming the field) or a model without the `replaceLinear` seam.
 */
export function getPeftModel(
  model: PreTrainedModelForSequenceClassification,
  config: LoraConfig,
  options?: GetPeftModelOptions,
): PeftModelForSequenceClassification;
export function getPeftModel(
  model: PreTrainedModelForCausalLM,
  config: LoraConfig,
  options?: GetPeftModelOptions,
): PeftModelForCausalLM;
export function getPeftModel(model: LoraBaseModel, config: LoraConfig, options?: GetPeftModelOptions): PeftModel;
export function getPeftModel(model: LoraBaseModel, config: LoraConfig, options: GetPeftModelOptions = {}): PeftModel {
  return wrap(model, config, options);
}
