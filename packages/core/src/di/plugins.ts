import type { DependencyContainer } from "tsyringe";
import type { LossFactory, LossOutput } from "../interfaces/loss.js";
import type { Callback } from "../interfaces/callback.js";
import type { Plugin } from "../interfaces/plugin.js";
import { lossRegistryOf } from "./container.js";
import { CALLBACKS } from "./tokens.js";

/**
 * A plugin that registers one loss in the run's registry. Built-in losses and user losses
 * can both be installed this way (or registered globally with `registerLoss`).
 */
export function lossPlugin<TConfig, TInputs, TOutput extends LossOutput>(
  name: string,
  factory: LossFactory<TConfig, TInputs, TOutput>,
): Plugin {
  return {
    name: `loss:${name}`,
    register(container: DependencyContainer) {
      lossRegistryOf(container).register(name, factory);
    },
  };
}

/** A plugin that registers callbacks under `CALLBACKS`. */
export function callbackPlugin(name: string, ...callbacks: Callback<any>[]): Plugin {
  return {
    name,
    register(container: DependencyContainer) {
      for (const cb of callbacks) container.register(CALLBACKS, { useValue: cb });
    },
  };
}
