import type { GradientHook } from "./gradient-hook.js";
import type { Callback } from "./callback.js";
import type { LossFactory } from "./loss.js";
import type { CausalLM } from "./model.js";

/** Options of {@link PluginContext.registerLoss}. */
export interface PluginLossOptions {
  /** Replace a loss of the same name registered earlier in this run. Default false. */
  override?: boolean;
}

/**
 * What a plugin may do to a run, and nothing more: the run's composition root hands it to
 * {@link Plugin.register}. Everything registered here belongs to this run only.
 */
export interface PluginContext {
  /** Name of the method being composed (`"dpo"`, `"sft"`, `"reward"`, `"ppo"`, …). */
  readonly method: string;
  /** Register a loss under `name` in this run's loss registry (`lossType: name` then selects it). */
  registerLoss(name: string, factory: LossFactory<any, any, any>, options?: PluginLossOptions): void;
  /** Add a callback to the run (after the user's). */
  addCallback(callback: Callback<any>): void;
  /** Add a gradient hook (loss scaling, step vetoes) to the run. */
  addGradientHook(hook: GradientHook): void;
  /**
   * Replace the model before training: transforms run in plugin order (LoRA wraps the linear layers here).
   * The function gets the current model and returns the one to train.
   */
  wrapModel(transform: (model: CausalLM) => CausalLM): void;
  /** Observe the final, wrapped model once every `wrapModel` ran (AMP converts frozen weights here). */
  onModelReady(observer: (model: CausalLM) => void): void;
  /**
   * Provide a value under an extension token of another package (e.g. `REWARD_FUNCTIONS` of
   * `@prefkit/losses`); several values per token are allowed.
   */
  provide<T>(token: symbol, value: T): void;
}

/**
 * A plugin: the one way to extend a run. LoRA, AMP, user losses, reward functions and callbacks all
 * implement it; `register` is called once per run, in plugin order, with that run's {@link PluginContext}.
 */
export interface Plugin {
  /** Unique name within a run, e.g. `"lora"` or `"loss:my-loss"`. */
  readonly name: string;
  /** Register what the plugin contributes to this run. Synchronous: a trainer is composed when it is built. */
  register(context: PluginContext): void;
}
