/**
 * Rule-based rewards for PPO, GRPO and RLOO: TRL-style reward functions, registered by name for every run
 * ({@link registerRewardFunction}) or for one run (a {@link rewardFunctionPlugin}, which provides it under
 * {@link REWARD_FUNCTIONS}), so `rewardModel: "my-reward"` (PPO) or `rewardFuncs: ["my-reward"]` (GRPO)
 * finds a user's function as `lossType` finds a loss; and {@link loadRewardFunctions}, which reads them
 * from a module (the CLI's `--reward-funcs ./rewards.mjs`).
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError, type Plugin, resolveAllOrEmpty, type SequenceClassifier } from "@prefkit/core";
import type { DependencyContainer } from "tsyringe";

/** What a {@link RewardFunction} gets next to the decoded texts: the token ids and the dataset row's other columns. */
export interface RewardFunctionInputs {
  /** Prompt ids per row (padding removed). */
  promptIds: number[][];
  /** Response ids per row, truncated at the stop token (kept) and without padding. */
  completionIds: number[][];
  /**
   * The dataset's other columns, one value per completion (TRL's reward `**kwargs`): with rows
   * `{ prompt, answer }`, `columns.answer[i]` is the answer of completion i's prompt. Empty when the rows
   * have no other fields (or are tokenised `{ inputIds }` rows).
   */
  columns: Record<string, unknown[]>;
}

/**
 * A reward computed from text (TRL's `reward_funcs` signature): one score per completion, or `null` where the
 * function does not apply (GRPO and RLOO leave it out of the sums and statistics, TRL's `None`; PPO needs a
 * number). May be async.
 */
export type RewardFunction = (
  completions: string[],
  prompts: string[],
  inputs: RewardFunctionInputs,
) => ReadonlyArray<number | null> | Promise<ReadonlyArray<number | null>>;

/** The reward of a PPO run: a reward model, a reward function, or the registered name of one. */
export type PPORewardSource = SequenceClassifier | RewardFunction | string;

/** Injection token of the run's {@link RewardFunctionRegistry}. */
export const REWARD_FUNCTION_REGISTRY: unique symbol = Symbol("prefkit.REWARD_FUNCTION_REGISTRY");

/** Extension token (several values) of the reward functions plugins provide to a run: {@link NamedRewardFunction}s. */
export const REWARD_FUNCTIONS: unique symbol = Symbol("prefkit.REWARD_FUNCTIONS");

/** A reward function and the name `rewardModel` selects it by (what {@link REWARD_FUNCTIONS} holds). */
export interface NamedRewardFunction {
  /** Registry name. */
  name: string;
  /** The function. */
  fn: RewardFunction;
}

/**
 * Reward functions by name, chained like core's `LossRegistry`: a run's registry (in its container)
 * falls back to {@link defaultRewardFunctionRegistry}.
 */
export class RewardFunctionRegistry {
  private readonly fns = new Map<string, RewardFunction>();

  /** @param parent registry consulted when a name is not registered here. */
  constructor(readonly parent?: RewardFunctionRegistry) {}

  /** Register `fn` under `name`; a taken name is a {@link ConfigError} unless `override`. */
  register(name: string, fn: RewardFunction, options: { override?: boolean } = {}): this {
    if (!name) throw new ConfigError("a reward function needs a non-empty name", { field: "rewardModel" });
    if (typeof fn !== "function")
      throw new ConfigError(`reward function "${name}" is not a function`, { field: "rewardModel" });
    if (this.fns.has(name) && !options.override) {
      throw new ConfigError(`reward function "${name}" is already registered (pass { override: true })`, {
        field: "rewardModel",
      });
    }
    this.fns.set(name, fn);
    return this;
  }

  /** True when `name` is registered here or in a parent. */
  has(name: string): boolean {
    return this.fns.has(name) || (this.parent?.has(name) ?? false);
  }

  /** Every registered name, sorted. */
  names(): string[] {
    return [...new Set([...(this.parent?.names() ?? []), ...this.fns.keys()])].sort();
  }

  /** The function registered as `name`; a {@link ConfigError} listing the known names otherwise. */
  get(name: string, field = "rewardModel"): RewardFunction {
    const own = this.fns.get(name);
    if (own) return own;
    if (this.parent?.has(name)) return this.parent.get(name, field);
    const known = this.names();
    throw new ConfigError(
      `unknown reward function "${name}"; known: ${known.length ? known.map((n) => `"${n}"`).join(", ") : "(none registered)"}`,
      { field },
    );
  }
}

/** The process-wide registry (functions meant for every run). */
export const defaultRewardFunctionRegistry: RewardFunctionRegistry = new RewardFunctionRegistry();

/** Register a reward function globally (see {@link defaultRewardFunctionRegistry}). */
export function registerRewardFunction(name: string, fn: RewardFunction, options?: { override?: boolean }): void {
  defaultRewardFunctionRegistry.register(name, fn, options);
}

/**
 * The run's registry, created in `container` on first use: every function provided there under
 * {@link REWARD_FUNCTIONS} (a taken name is a {@link ConfigError}), falling back to a parent container's
 * registry, else {@link defaultRewardFunctionRegistry}.
 */
export function rewardFunctionRegistryOf(container: DependencyContainer): RewardFunctionRegistry {
  if (!container.isRegistered(REWARD_FUNCTION_REGISTRY)) {
    const inherited = container.isRegistered(REWARD_FUNCTION_REGISTRY, true)
      ? container.resolve<RewardFunctionRegistry>(REWARD_FUNCTION_REGISTRY)
      : defaultRewardFunctionRegistry;
    const registry = new RewardFunctionRegistry(inherited);
    for (const { name, fn } of resolveAllOrEmpty<NamedRewardFunction>(container, REWARD_FUNCTIONS)) {
      registry.register(name, fn);
    }
    container.register(REWARD_FUNCTION_REGISTRY, { useValue: registry });
  }
  return container.resolve<RewardFunctionRegistry>(REWARD_FUNCTION_REGISTRY);
}

/** A plugin that provides one reward function to the run (as core's `lossPlugin` does for losses). */
export function rewardFunctionPlugin(name: string, fn: RewardFunction): Plugin {
  return {
    name: `reward:${name}`,
    register(context) {
      context.provide<NamedRewardFunction>(REWARD_FUNCTIONS, { name, fn });
    },
  };
}

/**
 * The reward functions a module exports by name (the CLI's `--reward-funcs ./rewards.mjs`): every named
 * export that is a function, in the module namespace's (alphabetical) order, or the ones `names` asks for,
 * in that order. Feed them to a GRPO/RLOO run as `rewardFuncs: Object.fromEntries(fns.map((f) => [f.name, f.fn]))`
 * or as plugins (`fns.map((f) => rewardFunctionPlugin(f.name, f.fn))`).
 *
 * @param modulePath a path (relative to the working directory) or a `file:` URL of an ES module
 * @param names export names to take (default: every exported function)
 * @throws ConfigError (field `rewardFuncs`) when the module cannot be loaded, exports no function, or lacks
 *   a requested name
 */
export async function loadRewardFunctions(
  modulePath: string,
  names?: readonly string[],
): Promise<NamedRewardFunction[]> {
  const url = modulePath.startsWith("file:") ? modulePath : pathToFileURL(resolve(modulePath)).href;
  let module: Record<string, unknown>;
  try {
    module = (await import(url)) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`cannot load reward functions from ${modulePath}: ${(e as Error).message}`, {
      field: "rewardFuncs",
    });
  }
  const exported = Object.entries(module).filter(([name, fn]) => name !== "default" && typeof fn === "function");
  if (names === undefined) {
    if (exported.length === 0) {
      throw new ConfigError(`${modulePath} exports no function`, { field: "rewardFuncs" });
    }
    return exported.map(([name, fn]) => ({ name, fn: fn as RewardFunction }));
  }
  return names.map((name) => {
    const fn = module[name];
    if (typeof fn !== "function") {
      const known = exported.map(([n]) => n).join(", ") || "(none)";
      throw new ConfigError(`${modulePath} has no exported function "${name}"; it exports ${known}`, {
        field: "rewardFuncs",
      });
    }
    return { name, fn: fn as RewardFunction };
  });
}
