/**
 * What every trainer façade of this package takes, and the helpers that turn it into a run.
 * @module
 */
import {
  type Callback,
  type ComposeOptions,
  defaultLossRegistry,
  type Plugin,
  type RunDefinition,
  type SchedulerFactory,
  type TokenizerLike,
  type TrainingArgs,
  type tf,
} from "@prefkit/core";
import { registerBuiltinLosses } from "../builtins.js";

/** Constructor options every trainer of this package takes (TRL's parameter names in camelCase). */
export interface TrainerCommonOptions extends ComposeOptions {
  /** Tokenizer (TRL's `processing_class`): tokenises raw rows; its pad id pads batches. */
  processingClass?: TokenizerLike;
  /** Alias of `processingClass` (older TRL name). */
  tokenizer?: TokenizerLike;
  /** Callbacks, after the default flow callback. */
  callbacks?: Callback<any>[];
  /** Plugins for this run: their losses, callbacks, gradient hooks and model transforms (LoRA, AMP). */
  plugins?: Plugin[];
  /** Optimizer to use instead of AdamW built from the args. */
  optimizer?: tf.Optimizer;
  /** Learning-rate schedule to use instead of the one `lrSchedulerType` names. */
  scheduler?: SchedulerFactory;
  /** Where warnings go (dropped rows, the ln 2 warning, …). Default `console.warn`. */
  warn?: (message: string) => void;
}

let builtinsRegistered = false;

/**
 * Make sure core's `defaultLossRegistry` holds the built-in losses of this package. Idempotent, and it
 * never replaces a name that is already registered (a user's global registration wins).
 */
export function ensureBuiltinLosses(): void {
  if (builtinsRegistered) return;
  builtinsRegistered = true;
  registerBuiltinLosses({
    register(name, factory) {
      if (!defaultLossRegistry.has(name)) defaultLossRegistry.register(name, factory);
    },
  });
}

/** The parts of a {@link RunDefinition} that come straight from {@link TrainerCommonOptions}. */
export function commonRunParts<TArgs extends TrainingArgs>(
  options: TrainerCommonOptions,
): Pick<RunDefinition<unknown, TArgs>, "tokenizer" | "callbacks" | "plugins" | "optimizer" | "scheduler" | "warn"> {
  ensureBuiltinLosses();
  const tokenizer = options.processingClass ?? options.tokenizer;
  return {
    ...(tokenizer !== undefined ? { tokenizer } : {}),
    callbacks: options.callbacks ?? [],
    plugins: options.plugins ?? [],
    ...(options.optimizer !== undefined ? { optimizer: options.optimizer } : {}),
    ...(options.scheduler !== undefined ? { scheduler: options.scheduler } : {}),
    warn: options.warn ?? ((m: string) => console.warn(m)),
  };
}

/** The pad id a method collates with: the config's, else the tokenizer's pad, else its eos, else the model config's, else 0. */
export function resolvePadTokenId(
  configured: number | null | undefined,
  tokenizer: TokenizerLike | undefined,
  modelConfig: Record<string, unknown>,
): number {
  const fromModel = modelConfig["pad_token_id"];
  return (
    configured ?? tokenizer?.padTokenId ?? tokenizer?.eosTokenId ?? (typeof fromModel === "number" ? fromModel : 0)
  );
}
