import type { DependencyContainer } from "tsyringe";
import type { CausalLM } from "./model.js";

/**
 * A plugin: the one way to extend a run. LoRA, AMP, built-in losses and user code all
 * register providers in the run container through the same `register` call, then may wrap or
 * inspect the model once it is loaded.
 */
export interface Plugin {
  /** Unique name within a run, e.g. `"lora"` or `"my-loss"`. */
  readonly name: string;
  /** Register providers (losses, callbacks, model wrappers) in the run container. */
  register(container: DependencyContainer): void | Promise<void>;
  /** Replace the model, e.g. LoRA wrapping linear layers. Called in plugin order. */
  wrapModel?(model: CausalLM, container: DependencyContainer): CausalLM | Promise<CausalLM>;
  /** Observe the final (wrapped) model, e.g. to freeze weights. */
  onModelLoaded?(model: CausalLM, container: DependencyContainer): void | Promise<void>;
}
