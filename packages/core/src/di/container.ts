/**
 * The run container and plugin installation.
 *
 * **Why explicit `@inject` everywhere.** tsyringe can infer constructor parameter types from
 * `design:paramtypes` metadata, but whether that metadata exists depends on the compiler:
 * `tsc` and vitest 4 (Oxc) emit it, vitest 3 (esbuild) does not, and a class with `@inject`
 * on only some parameters then silently receives `undefined`. Interfaces (`CausalLM`,
 * `Loss`) have no runtime type either. So every injectable prefkit class puts an explicit
 * `@inject(TOKEN)` on every constructor parameter, and every token is a symbol. Classes stay
 * plain: a test can build one with `new` and no container.
 *
 * **Why a child container per run.** The tsyringe root `container` is process-global. A run
 * resolves everything from `createRunContainer()`, a child whose own registrations (model,
 * loss, callbacks, a child {@link LossRegistry}) never reach the parent or sibling runs, so
 * two trainers in one process share nothing but what was deliberately registered globally.
 * @module
 */
import "reflect-metadata";
import { type DependencyContainer, container as rootContainer } from "tsyringe";
import { defaultEngine } from "../engine/engine.js";
import { ConfigError } from "../errors/index.js";
import type { CausalLM } from "../interfaces/model.js";
import type { Plugin, PluginContext } from "../interfaces/plugin.js";
import { defaultLossRegistry, LossRegistry } from "./loss-registry.js";
import { CALLBACKS, ENGINE, GRADIENT_HOOKS, LOSS_REGISTRY, PLUGINS } from "./tokens.js";

/**
 * A fresh child container for one run. It registers a `LOSS_REGISTRY` whose parent is the parent
 * container's registry if it has one, else {@link defaultLossRegistry}, and `ENGINE` (the
 * {@link defaultEngine}) unless the parent has one.
 * @param parent container to inherit from; defaults to tsyringe's global `container`.
 */
export function createRunContainer(parent: DependencyContainer = rootContainer): DependencyContainer {
  const child = parent.createChildContainer();
  child.register(LOSS_REGISTRY, { useValue: new LossRegistry(lossRegistryOf(parent)) });
  if (!child.isRegistered(ENGINE, true)) child.register(ENGINE, { useValue: defaultEngine });
  return child;
}

/** Every value registered under `token` (here or, if none here, in a parent), or `[]`. */
export function resolveAllOrEmpty<T>(container: DependencyContainer, token: symbol): T[] {
  return container.isRegistered(token, true) ? container.resolveAll<T>(token) : [];
}

/** The run's loss registry (see {@link createRunContainer}); falls back to {@link defaultLossRegistry}. */
export function lossRegistryOf(container: DependencyContainer): LossRegistry {
  return container.isRegistered(LOSS_REGISTRY, true)
    ? container.resolve<LossRegistry>(LOSS_REGISTRY)
    : defaultLossRegistry;
}

/** The model transforms plugins asked for, in plugin order (see {@link installPlugins}). */
export interface ModelTransforms {
  /** `PluginContext.wrapModel` functions, in order. */
  wrap: Array<(model: CausalLM) => CausalLM>;
  /** `PluginContext.onModelReady` observers, in order. */
  ready: Array<(model: CausalLM) => void>;
  /** Apply every wrap, then every observer; returns the final model. */
  apply(model: CausalLM): CausalLM;
}

/**
 * Install plugins into a run container: each is registered under `PLUGINS` and its `register` is called
 * with a {@link PluginContext} bound to this container, in order. What they contribute lands under
 * `LOSS_REGISTRY`, `CALLBACKS`, `GRADIENT_HOOKS` (or the token they `provide`); model transforms are
 * returned, to apply once the model is known. Throws a {@link ConfigError} on a duplicate name.
 * @param method the method name plugins see (`"dpo"`, …).
 */
export function installPlugins(
  container: DependencyContainer,
  plugins: readonly Plugin[],
  method = "custom",
): ModelTransforms {
  const seen = new Set(resolveAllOrEmpty<Plugin>(container, PLUGINS).map((p) => p.name));
  const transforms: ModelTransforms = {
    wrap: [],
    ready: [],
    apply(model) {
      let current = model;
      for (const w of this.wrap) current = w(current);
      for (const r of this.ready) r(current);
      return current;
    },
  };
  const context: PluginContext = {
    method,
    registerLoss: (name, factory, options) => lossRegistryOf(container).register(name, factory, options),
    addCallback: (callback) => container.register(CALLBACKS, { useValue: callback }),
    addGradientHook: (hook) => container.register(GRADIENT_HOOKS, { useValue: hook }),
    wrapModel: (transform) => transforms.wrap.push(transform),
    onModelReady: (observer) => transforms.ready.push(observer),
    provide: (token, value) => container.register(token, { useValue: value }),
  };
  for (const plugin of plugins) {
    if (!plugin || typeof plugin.name !== "string" || typeof plugin.register !== "function") {
      throw new ConfigError("a plugin needs a string `name` and a `register(context)` method", { field: "plugins" });
    }
    if (seen.has(plugin.name)) {
      throw new ConfigError(`plugin "${plugin.name}" is installed twice`, { field: "plugins" });
    }
    seen.add(plugin.name);
    container.register(PLUGINS, { useValue: plugin });
    plugin.register(context);
  }
  return transforms;
}
