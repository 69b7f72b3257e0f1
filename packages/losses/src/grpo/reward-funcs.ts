/**
 * The reward functions of a GRPO or RLOO run (TRL's `reward_funcs`): several per run, each a function, a
 * reward model or a registered name, each scored on every completion and logged under its own name.
 * @module
 */
import {
  ConfigError,
  isSequenceClassifier,
  resolveAllOrEmpty,
  type SequenceClassifier,
  type TokenizerLike,
} from "@prefkit/core";
import type { DependencyContainer } from "tsyringe";
import {
  type NamedRewardFunction,
  REWARD_FUNCTIONS,
  type RewardFunction,
  rewardFunctionRegistryOf,
} from "../ppo/reward-function.js";
import type { ScoreRows } from "../ppo/rollout.js";
import { checkRewardSource, createScorer, type Scorer } from "../ppo/scoring.js";

/** One reward of a GRPO/RLOO run: a {@link RewardFunction}, a reward model (one label), or a registered function's name. */
export type RewardFuncSource = RewardFunction | SequenceClassifier | string;

/**
 * `rewardFuncs`: one source, a list of them, or a record of named functions and models (the names logged as
 * `rewards/<name>/mean`). In a list, a function is named by its `name` (`reward_func_<i>` for an anonymous
 * one), a model by the last part of its `_name_or_path` (`reward_model_<i>` without one), a string by itself.
 */
export type RewardFuncsInput =
  | RewardFuncSource
  | readonly RewardFuncSource[]
  | Readonly<Record<string, RewardFunction | SequenceClassifier>>;

/** The resolved reward functions of a run. */
export interface RewardFuncs {
  /** One name per function, in column order (the metric names). */
  readonly names: readonly string[];
  /** The rewards of the completions `[B][F]`, `null` as NaN (TRL's `None`). */
  score(rows: ScoreRows): Promise<number[][]>;
}

/** What {@link resolveRewardFuncs} needs. */
export interface RewardFuncsOptions {
  /** The sources; `undefined` takes every reward function a plugin provided to this run. */
  rewardFuncs: RewardFuncsInput | undefined;
  /** The run container: its reward-function registry and plugin-provided functions. */
  container: DependencyContainer;
  /** The policy's tokenizer (decodes texts for functions, re-tokenises for reward models). */
  tokenizer: TokenizerLike | undefined;
  /** Reward models' own tokenizer, when it differs from the policy's. */
  rewardTokenizer: TokenizerLike | undefined;
  /** Rows per reward-model forward. */
  forwardBatchSize: number;
  /** Where notices go. */
  warn: (message: string) => void;
}

function named(input: RewardFuncsInput): Array<[string, RewardFuncSource]> {
  if (typeof input === "string" || typeof input === "function" || isSequenceClassifier(input)) return named([input]);
  if (!Array.isArray(input)) return Object.entries(input as Record<string, RewardFunction | SequenceClassifier>);
  return (input as readonly RewardFuncSource[]).map((source, i) => {
    if (typeof source === "string") return [source, source];
    if (typeof source === "function") return [source.name || `reward_func_${i}`, source];
    const path = source.config["_name_or_path"];
    return [(typeof path === "string" && path.split("/").pop()) || `reward_model_${i}`, source];
  });
}

/**
 * Resolve a run's reward functions (names looked up in the run's registry, so call it when training starts):
 * one scorer per source (PPO's `createScorer`), run concurrently on each rollout (async functions overlap).
 * @throws ConfigError (field `rewardFuncs`) for no functions, duplicate names, an unknown name, or a reward
 *   model with `numLabels` ≠ 1; when scoring, for a function that returns other than one number or `null`
 *   per completion.
 */
export function resolveRewardFuncs(options: RewardFuncsOptions): RewardFuncs {
  const field = "rewardFuncs";
  const sources: Array<[string, RewardFuncSource]> =
    options.rewardFuncs !== undefined
      ? named(options.rewardFuncs)
      : resolveAllOrEmpty<NamedRewardFunction>(options.container, REWARD_FUNCTIONS).map((f) => [f.name, f.name]);
  if (sources.length === 0) {
    throw new ConfigError("no reward functions: pass rewardFuncs, or a rewardFunctionPlugin", { field });
  }
  const names = sources.map(([name]) => name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) {
    throw new ConfigError(`two reward functions are named "${duplicate}" (their metrics would collide)`, { field });
  }
  const registry = rewardFunctionRegistryOf(options.container);
  const scorers: Scorer[] = sources.map(([, reward]) => {
    checkRewardSource(reward);
    return createScorer({
      reward,
      registry,
      tokenizer: options.tokenizer,
      rewardTokenizer: options.rewardTokenizer,
      forwardBatchSize: options.forwardBatchSize,
      warn: options.warn,
      field,
    });
  });
  return {
    names,
    async score(rows) {
      const columns = await Promise.all(scorers.map((score) => score(rows)));
      const n = rows.promptIds.length;
      columns.forEach((values, f) => {
        const ok =
          values.length === n && values.every((v) => v === null || (typeof v === "number" && Number.isFinite(v)));
        if (!ok) {
          throw new ConfigError(
            `reward function "${names[f]}" gave ${values.length} values for ${n} completions (a finite number or null each)`,
            { field },
          );
        }
      });
      return Array.from({ length: n }, (_, i) => columns.map((values) => values[i] ?? Number.NaN));
    },
  };
}
