/**
 * Putting LoRA layers and `modulesToSave` copies on a model's projections through its `replaceLinear`
 * seam, switching them, and taking them off again, merged into the base weights or not.
 * @module
 */
import {
  ConfigError,
  type HalfPrecisionTensor,
  hasHalfPrecisionWeights,
  isSequenceClassifier,
  Rng,
  tf,
} from "@prefkit/core";
import type { PretrainedConfig } from "../io/config/index.js";
import type { SavePretrainedOptions } from "../modeling/causal-lm.js";
import { HalfPrecisionLinear } from "../modeling/decoder/half-precision.js";
import { Linear, type LinearModule } from "../modeling/decoder/linear.js";
import {
  type LoraConfig,
  type LoraTaskType,
  leafNames,
  loraScaling,
  moduleNameMatches,
  PEFT_KEY_PREFIX,
  type ResolvedLoraConfig,
  resolveLoraConfig,
  selectTargetModules,
} from "./config.js";
import { type AdapterState, type LoraDropoutMode, LoraLinear, ModulesToSaveLinear } from "./layer.js";

/**
 * What LoRA needs from a model: the projections by HF module name and the seam to replace them
 * (`PreTrainedModelForCausalLM` and `PreTrainedModelForSequenceClassification` both qualify).
 */
export interface LoraBaseModel {
  /** The HF `config.json` content. */
  readonly config: PretrainedConfig;
  /** Directory the model was loaded from, if any (becomes `base_model_name_or_path`). */
  readonly sourceDir?: string | undefined;
  /** Every projection by HF module name. */
  linearModules(): Map<string, LinearModule>;
  /** Replace the projection `name` by `wrap(current)`. */
  replaceLinear(name: string, wrap: (current: LinearModule) => LinearModule): LinearModule;
  /** Every variable by HF parameter name. */
  namedParameters(): Map<string, tf.Variable>;
  /** The weights stored in 16 bits (a model loaded with `dtype: "bfloat16"`), frozen with the variables. */
  halfPrecisionWeights?(): Map<string, HalfPrecisionTensor>;
  /** Write the model in HF layout. */
  savePretrained(dir: string, options?: SavePretrainedOptions): Promise<void>;
  /** Free every tensor the model owns. */
  dispose(): void;
}

/** Where adapters go on one model. */
export interface AdapterPlan {
  /** The config with the task type, base path, `modulesToSave` and an `all-linear` target list filled in. */
  config: ResolvedLoraConfig;
  /** HF module names that get a LoRA layer, in model order. */
  targetNames: string[];
  /** HF module names trained in full and saved with the adapter. */
  modulesToSaveNames: string[];
}

/**
 * Resolve `config` against `model`: its task type, the projections to adapt and those to copy.
 * @throws ConfigError for a bad config, a task type that does not fit the model, or target /
 *   `modulesToSave` names that match no projection.
 */
export function planAdapters(model: LoraBaseModel, config: LoraConfig): AdapterPlan {
  const resolved = resolveLoraConfig(config);
  const defaultTask: LoraTaskType = isSequenceClassifier(model) ? "SEQ_CLS" : "CAUSAL_LM";
  if (resolved.taskType !== undefined && resolved.taskType !== defaultTask) {
    throw new ConfigError(`${resolved.taskType} does not fit this model (a ${defaultTask} model)`, {
      field: "taskType",
    });
  }
  resolved.taskType = defaultTask;
  resolved.baseModelNameOrPath ??= model.sourceDir ?? (model.config["_name_or_path"] as string | undefined) ?? null;
  const available = [...model.linearModules().keys()];
  // PEFT's PeftModelForSequenceClassification always trains and saves the head.
  const auto = defaultTask === "SEQ_CLS" ? ["classifier", "score"] : [];
  const userSaved = resolved.modulesToSave ?? [];
  for (const name of userSaved) {
    if (!auto.includes(name) && !available.some((n) => moduleNameMatches(n, [name]))) {
      throw new ConfigError(`"${name}" matches no projection (see linearModules() for the names)`, {
        field: "modulesToSave",
      });
    }
  }
  const saveKeys = [...new Set([...userSaved, ...auto])];
  if (auto.length > 0) resolved.modulesToSave = saveKeys;
  const modulesToSaveNames = available.filter((n) => moduleNameMatches(n, saveKeys));
  const targetNames = selectTargetModules(resolved.targetModules, available, saveKeys);
  if (resolved.targetModules === "all-linear") resolved.targetModules = leafNames(targetNames);
  return { config: resolved, targetNames, modulesToSaveNames };
}

/** Options of {@link getPeftModel}. */
export interface GetPeftModelOptions {
  /** Seed of `lora_A`'s Kaiming-uniform init and of the dropout masks. Default 42. */
  seed?: number;
  /** When LoRA dropout applies (see {@link LoraDropoutMode}). Default `"auto"`. */
  dropoutMode?: LoraDropoutMode;
}

/**
 * The adapters installed on one model: its LoRA layers and `modulesToSave` copies, the on/off and dropout
 * state they share, and the `trainable` flags the base weights had before they were frozen.
 */
export class InjectedAdapters {
  /** Shared by every adapter layer: the on/off switch and dropout. */
  readonly state: AdapterState;
  /** The LoRA layers by HF module name. */
  readonly loraLayers: Map<string, LoraLinear>;
  /** The `modulesToSave` wrappers by HF module name. */
  readonly savedModules: Map<string, ModulesToSaveLinear>;
  private readonly previousTrainable = new Map<tf.Variable | HalfPrecisionTensor, boolean>();

  /**
   * Freeze every weight of `model` (its variables and, for a model loaded in 16 bits, its 16-bit weights,
   * which therefore never get float32 copies), then wrap `plan.targetNames` in LoRA layers (A Kaiming-uniform
   * from `seed`, B zero, so the model starts equal to its base) and `plan.modulesToSaveNames` in copies,
   * trainable unless `trainable: false`.
   * @throws ConfigError when a `modulesToSave` projection is not a plain {@link Linear}.
   */
  constructor(model: LoraBaseModel, plan: AdapterPlan, options: GetPeftModelOptions & { trainable?: boolean } = {}) {
    const seed = options.seed ?? 42;
    const trainable = options.trainable ?? true;
    this.state = { enabled: true, dropoutMode: options.dropoutMode ?? "auto", rng: new Rng(seed) };
    const half = hasHalfPrecisionWeights(model) ? model.halfPrecisionWeights().values() : [];
    for (const w of new Set<tf.Variable | HalfPrecisionTensor>([...model.namedParameters().values(), ...half])) {
      this.previousTrainable.set(w, w.trainable);
      w.trainable = false;
    }
    this.loraLayers = injectLoraLayers(model, plan, this.state, seed, trainable);
    this.savedModules = injectModulesToSave(model, plan.modulesToSaveNames, this.state, trainable);
  }

  /**
   * Run `fn` with adapters disabled, then restore the previous state (also when `fn` throws, and, for a
   * promise, when it settles).
   */
  withDisabled<T>(fn: () => T): T {
    const previous = this.state.enabled;
    this.state.enabled = false;
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.state.enabled = previous;
      throw e;
    }
    if (result instanceof Promise) {
      return result.finally(() => {
        this.state.enabled = previous;
      }) as T;
    }
    this.state.enabled = previous;
    return result;
  }

  /** Every `lora_A`/`lora_B` and `modulesToSave` copy, keyed as in `adapter_model.safetensors`. */
  stateDict(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, layer] of this.loraLayers) {
      out.set(`${PEFT_KEY_PREFIX}${name}.lora_A.weight`, layer.loraA);
      out.set(`${PEFT_KEY_PREFIX}${name}.lora_B.weight`, layer.loraB);
    }
    for (const wrapper of this.savedModules.values()) {
      for (const [k, v] of wrapper.copy.parameters()) out.set(PEFT_KEY_PREFIX + k, v);
    }
    return out;
  }

  /**
   * Fold every LoRA update into its base weight (`W += scaling·B·A`), copy the `modulesToSave` copies
   * into the originals, and put the base projections back in place of the wrappers (disposed).
   * A 16-bit base ({@link HalfPrecisionLinear}, e.g. a model loaded with `dtype: "bfloat16"`) is merged in
   * float32 and rounded back to its dtype, as PEFT merges into a bf16 base.
   * @throws ConfigError, before changing anything, when a base projection is not a plain
   *   {@link Linear} or {@link HalfPrecisionLinear}, or is tied to the embeddings.
   */
  merge(model: LoraBaseModel): void {
    for (const [name, layer] of this.loraLayers) {
      const base = layer.base;
      const plain = base instanceof Linear || base instanceof HalfPrecisionLinear;
      if (!plain || base.sharedWeight) {
        throw new ConfigError(
          plain
            ? `"${name}" shares its weight with the embeddings; merging would change them too`
            : `"${name}" has no plain weight to merge into: load the base without other wrappers and use PeftModel.fromPretrained`,
          { field: name },
        );
      }
    }
    for (const [name, layer] of this.loraLayers) {
      const base = layer.base as Linear | HalfPrecisionLinear;
      if (base instanceof Linear) {
        tf.tidy(() => base.weight.assign(tf.add(base.weight, layer.deltaWeight())));
      } else {
        const merged = tf.tidy(() => tf.add(base.upcast(), layer.deltaWeight()));
        base.weight.assign(merged.dataSync() as Float32Array);
        merged.dispose();
      }
      model.replaceLinear(name, () => base);
      layer.dispose();
    }
    for (const [name, wrapper] of this.savedModules) {
      const original = wrapper.original as Linear | HalfPrecisionLinear;
      if (original instanceof Linear) tf.tidy(() => original.weight.assign(wrapper.copy.weight));
      else original.weight.assign(wrapper.copy.weight.dataSync() as Float32Array);
      if (original.bias && wrapper.copy.bias) tf.tidy(() => original.bias!.assign(wrapper.copy.bias!));
      model.replaceLinear(name, () => original);
      wrapper.dispose();
    }
  }

  /** Put the base projections back in place of the wrappers (disposed), without merging. */
  remove(model: LoraBaseModel): void {
    for (const [name, layer] of this.loraLayers) {
      model.replaceLinear(name, () => layer.base);
      layer.dispose();
    }
    for (const [name, wrapper] of this.savedModules) {
      model.replaceLinear(name, () => wrapper.original);
      wrapper.dispose();
    }
  }

  /** Free every adapter layer and copy (the base model is the caller's). */
  dispose(): void {
    for (const layer of this.loraLayers.values()) layer.dispose();
    for (const wrapper of this.savedModules.values()) wrapper.dispose();
  }

  /** After {@link merge} or {@link remove}: give the base weights their `trainable` flags back and forget the adapters. */
  release(): void {
    for (const [w, t] of this.previousTrainable) if (!(w instanceof tf.Variable && w.isDisposed)) w.trainable = t;
    this.loraLayers.clear();
    this.savedModules.clear();
  }
}

function injectLoraLayers(
  model: LoraBaseModel,
  plan: AdapterPlan,
  state: AdapterState,
  seed: number,
  trainable: boolean,
): Map<string, LoraLinear> {
  const layers = new Map<string, LoraLinear>();
  const { r, loraDropout } = plan.config;
  const scaling = loraScaling(plan.config);
  const initRng = new Rng(seed);
  for (const name of plan.targetNames) {
    model.replaceLinear(name, (base) => {
      // kaiming_uniform_(a=√5) on [r, in]: bound = √(6 / ((1 + a²)·fan_in)) = 1/√fan_in.
      const bound = 1 / Math.sqrt(base.inFeatures);
      const a = new Float32Array(r * base.inFeatures);
      for (let i = 0; i < a.length; i++) a[i] = (2 * initRng.next() - 1) * bound;
      const loraA = tf.tensor2d(a, [r, base.inFeatures]);
      const loraB = tf.zeros([base.outFeatures, r]) as tf.Tensor2D;
      const layer = new LoraLinear(base, { loraA, loraB, scaling, dropout: loraDropout, trainable }, state);
      loraA.dispose();
      loraB.dispose();
      layers.set(name, layer);
      return layer;
    });
  }
  return layers;
}

function injectModulesToSave(
  model: LoraBaseModel,
  names: readonly string[],
  state: AdapterState,
  trainable: boolean,
): Map<string, ModulesToSaveLinear> {
  const wrappers = new Map<string, ModulesToSaveLinear>();
  for (const name of names) {
    model.replaceLinear(name, (original) => {
      if (!(original instanceof Linear || original instanceof HalfPrecisionLinear)) {
        throw new ConfigError(`"${name}" is not a plain projection; it cannot be copied for modulesToSave`, {
          field: "modulesToSave",
        });
      }
      const wrapper = new ModulesToSaveLinear(original, state, trainable);
      wrappers.set(name, wrapper);
      return wrapper;
    });
  }
  return wrappers;
}
