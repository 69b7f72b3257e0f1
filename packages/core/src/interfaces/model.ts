import type * as tf from "@tensorflow/tfjs-core";

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

/** Optional capability: a model that can make a frozen, independent copy of its current weights. */
export interface FrozenCopyable {
  /** A new model with copies of the current weights, all with `trainable = false`. */
  frozenCopy(): CausalLM;
}

/** True when `model` implements {@link AdapterToggle}. */
export function hasAdapterToggle(model: CausalLM): model is CausalLM & AdapterToggle {
  return typeof (model as Partial<AdapterToggle>).withAdaptersDisabled === "function";
}

/** True when `model` implements {@link FrozenCopyable}. */
export function isFrozenCopyable(model: CausalLM): model is CausalLM & FrozenCopyable {
  return typeof (model as Partial<FrozenCopyable>).frozenCopy === "function";
}
