/**
 * Rule-based rewards for PPO: TRL-style reward functions, registered by name in the run container
 * like losses are, so `rewardModel: "my-reward"` finds a user's function as it finds a built-in one.
 * @module
 */
import { ConfigError, type Plugin } from "@prefkit/core";
import type { DependencyContainer } from "tsyringe";

/** Token ids handed to a {@link RewardFunction} next to the decoded texts. */
export interface RewardFunctionIds {
  /** Prompt ids per row (padding removed). */
  promptIds: number[][];
  /** Response ids per row, truncated at the stop token (kept) and without padding. */
  completionIds: number[][];
}

/**
 * A reward computed from text (TRL's `reward_funcs` signature): one score per completion. It replaces a
 * reward model in the PPO trainer; `missingEosPenalty` and the KL penalty apply to its scores the same way.
 * May be async.
 */
export type RewardFunction = (
  completions: string[],
  prompts: string[],
  ids: RewardFunctionIds,
) => number[] | Promise<number[]>;

/** Injection token of the run's {@link RewardFunctionRegistry}. */
export const REWARD_FUNCTION_REGISTRY: unique symbol = Symbol("prefkit.REWARD_FUNCTION_REGISTRY");

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

/** The run's registry, created (as a child of the default one) on first use. */
export function rewardFunctionRegistryOf(container: DependencyContainer): RewardFunctionRegistry {
  if (!container.isRegistered(REWARD_FUNCTION_REGISTRY, true)) {
    container.register(REWARD_FUNCTION_REGISTRY, {
      useValue: new RewardFunctionRegistry(defaultRewardFunctionRegistry),
    });
  }
  return container.resolve<RewardFunctionRegistry>(REWARD_FUNCTION_REGISTRY);
}

/** A plugin that registers one reward function in the run's registry (as core's `lossPlugin` does for losses). */
export function rewardFunctionPlugin(name: string, fn: RewardFunction): Plugin {
  return {
    name: `reward:${name}`,
    register(container: DependencyContainer) {
      rewardFunctionRegistryOf(container).register(name, fn);
    },
  };
}
