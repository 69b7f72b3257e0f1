/**
 * The composition root of a run.
 *
 * **Why explicit `@inject` everywhere.** tsyringe can infer constructor parameter types from
 * `design:paramtypes` metadata, but whether that metadata exists depends on the compiler:
 * `tsc` and vitest 4 (Oxc) emit it, vitest 3 (esbuild) does not, and a class with `@inject`
 * on only some parameters then silently receives `undefined`. Interfaces (`CausalLM`,
 * `Loss`) have no runtime type either. So every injectable prefkit class puts an explicit
 * `@inject(TOKEN)` (or `@injectAll`) on every constructor parameter, and every token is a
 * symbol. Classes stay plain: a test can build one with `new` and no container.
 *
 * **Why a child container per run.** The tsyringe root `container` is process-global. A run
 * resolves everything from `createRunContainer()`, a child whose own registrations (model,
 * loss, callbacks, a child {@link LossRegistry}) never reach the parent or sibling runs, so
 * two trainers in one process share nothing but what was deliberately registered globally.
 * @module
 */
import "reflect-metadata";
import { type DependencyContainer, container as rootContainer } from "tsyringe";
import { tf } from "../engine/tf.js";
import { ConfigError } from "../errors/index.js";
import type { CausalLM } from "../interfaces/model.js";
import type { Plugin } from "../interfaces/plugin.js";
import { defaultLossRegistry, LossRegistry } from "./loss-registry.js";
import { ENGINE, LOSS_REGISTRY, MODEL, PLUGINS } from "./tokens.js";

/**
 * A fresh child container for one run. It registers `ENGINE` (the `tf` namespace) and a
 * `LOSS_REGISTRY` whose parent is the parent container's registry if it has one, else
 * {@link defaultLossRegistry}.
 * @param parent container to inherit from; defaults to tsyringe's global `container`.
 */
export function createRunContainer(parent: DependencyContainer = rootContainer): DependencyContainer {
  const child = parent.createChildContainer();
  const parentRegistry = parent.isRegistered(LOSS_REGISTRY, true)
    ? parent.resolve<LossRegistry>(LOSS_REGISTRY)
    : defaultLossRegistry;
  child.register(LOSS_REGISTRY, { useValue: new LossRegistry(parentRegistry) });
  if (!child.isRegistered(ENGINE, true)) child.register(ENGINE, { useValue: tf });
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

/**
 * Install plugins into a run container: each is registered under `PLUGINS` and its
 * `register(container)` is awaited, in order. Throws a {@link ConfigError} on a duplicate name.
 */
export async function installPlugins(container: DependencyContainer, plugins: readonly Plugin[]): Promise<void> {
  const seen = new Set(resolveAllOrEmpty<Plugin>(container, PLUGINS).map((p) => p.name));
  for (const plugin of plugins) {
    if (!plugin || typeof plugin.name !== "string" || typeof plugin.register !== "function") {
      throw new ConfigError("a plugin needs a string `name` and a `register(container)` method", { field: "plugins" });
    }
    if (seen.has(plugin.name)) {
      throw new ConfigError(`plugin "${plugin.name}" is installed twice`, { field: "plugins" });
    }
    seen.add(plugin.name);
    container.register(PLUGINS, { useValue: plugin });
    await plugin.register(container);
  }
}

/**
 * Pass a freshly loaded model through the installed plugins (`wrapModel` in order, then
 * `onModelLoaded` in order) and register the result under `MODEL`. Returns the final model.
 */
export async function attachModel(container: DependencyContainer, model: CausalLM): Promise<CausalLM> {
  const plugins = resolveAllOrEmpty<Plugin>(container, PLUGINS);
  let current = model;
  for (const p of plugins) if (p.wrapModel) current = await p.wrapModel(current, container);
  for (const p of plugins) if (p.onModelLoaded) await p.onModelLoaded(current, container);
  container.register(MODEL, { useValue: current });
  return current;
}
