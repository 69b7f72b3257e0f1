import type { Callback } from "../interfaces/callback.js";
import type { LossFactory, LossOutput } from "../interfaces/loss.js";
import type { Plugin } from "../interfaces/plugin.js";

/**
 * A plugin that registers one loss in the run's registry, so `lossType: name` selects it. Built-in losses
 * and user losses can both be installed this way (or registered for every run with `registerLoss`).
 *
 * Call it with a factory made by `defineLoss` (which carries its name), or with a name and any factory.
 */
export function lossPlugin(factory: LossFactory<any, any, any> & { readonly lossName: string }): Plugin;
export function lossPlugin<TConfig, TInputs, TOutput extends LossOutput>(
  name: string,
  factory: LossFactory<TConfig, TInputs, TOutput>,
): Plugin;
export function lossPlugin(
  nameOrFactory: string | (LossFactory<any, any, any> & { readonly lossName: string }),
  factory?: LossFactory<any, any, any>,
): Plugin {
  const name = typeof nameOrFactory === "string" ? nameOrFactory : nameOrFactory.lossName;
  const make = typeof nameOrFactory === "string" ? factory! : nameOrFactory;
  return {
    name: `loss:${name}`,
    register(context) {
      context.registerLoss(name, make);
    },
  };
}

/** A plugin that adds callbacks to the run. */
export function callbackPlugin(name: string, ...callbacks: Callback<any>[]): Plugin {
  return {
    name,
    register(context) {
      for (const cb of callbacks) context.addCallback(cb);
    },
  };
}
