/**
 * Plumbing shared by the trainers of this package: the run container (plugins, loss registry),
 * the built-in losses, and batch sources whose rows are only known once `train()` has prepared them.
 * @module
 */
import {
  attachModel,
  type BatchSource,
  CALLBACKS,
  type Callback,
  type CausalLM,
  ConfigError,
  createRunContainer,
  defaultLossRegistry,
  installPlugins,
  LOSS_REGISTRY,
  type LossFactory,
  LossRegistry,
  type GradientHook,
  gradientHooksOf,
  type Plugin,
  arrayBatchSource,
  resolveAllOrEmpty,
} from "@prefkit/core";
import type { DependencyContainer } from "tsyringe";
import { DPO_LOSSES } from "../dpo/objective.js";
import { registerBuiltinLosses } from "../dpo/register.js";

let builtinsRegistered = false;

/**
 * Make sure core's `defaultLossRegistry` holds the built-in losses (every DPO loss type, `"dpo"`,
 * `"reward"`). Idempotent, and it never replaces a name that is already registered.
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

/** A run container whose loss registry is a child of `lossRegistry` (default: core's `defaultLossRegistry`). */
export function trainerContainer(lossRegistry: LossRegistry | undefined): DependencyContainer {
  ensureBuiltinLosses();
  const container = createRunContainer();
  container.register(LOSS_REGISTRY, { useValue: new LossRegistry(lossRegistry ?? defaultLossRegistry) });
  return container;
}

/** The loss registry of a container made by {@link trainerContainer}. */
export function registryOf(container: DependencyContainer): LossRegistry {
  return container.resolve<LossRegistry>(LOSS_REGISTRY);
}

/**
 * Look a loss factory up by name: the registry first, then the built-in DPO losses (so a user registry
 * that lacks them still knows `"sigmoid"`). Throws the registry's {@link ConfigError} (listing the known
 * names) when neither has it.
 */
export function lossFactory(registry: LossRegistry, name: string, field: string): LossFactory<any, any, any> {
  if (registry.has(name)) return registry.get(name, field);
  const builtin = (DPO_LOSSES as Record<string, LossFactory<any, any, any>>)[name];
  if (builtin !== undefined) return builtin;
  return registry.get(name, field);
}

/**
 * Install `plugins` in `container` (`register`), pass `model` through their `wrapModel` / `onModelLoaded`,
 * and return the final model plus the callbacks and gradient hooks plugins registered under `CALLBACKS`
 * and `GRADIENT_HOOKS` (e.g. AMP's loss scaler).
 */
export async function applyPlugins(
  container: DependencyContainer,
  plugins: readonly Plugin[],
  model: CausalLM,
): Promise<{ model: CausalLM; callbacks: Callback<any>[]; gradientHooks: GradientHook[] }> {
  if (plugins.length === 0) return { model, callbacks: [], gradientHooks: [] };
  await installPlugins(container, plugins);
  const wrapped = await attachModel(container, model);
  return {
    model: wrapped,
    callbacks: resolveAllOrEmpty<Callback<any>>(container, CALLBACKS),
    gradientHooks: gradientHooksOf(container),
  };
}

/**
 * A {@link BatchSource} over rows that are filled in later (by `train()`), with core's seeded per-epoch
 * shuffle (`arrayBatchSource`) once they are. Reading it before then is a {@link ConfigError}.
 */
export class DeferredBatchSource<TRow, TBatch> implements BatchSource<TBatch> {
  private inner: BatchSource<TBatch> | undefined;

  /**
   * @param what name for the error message (e.g. `"trainDataset"`).
   * @param batchSize rows per micro-batch.
   * @param collate rows (with their dataset index) → batch.
   * @param options shuffle and seed.
   */
  constructor(
    readonly what: string,
    readonly batchSize: number,
    readonly collate: (rows: Array<{ row: TRow; index: number }>) => TBatch,
    readonly options: { shuffle: boolean; seed: number },
  ) {}

  /** Set the rows (replacing earlier ones). */
  setRows(rows: readonly TRow[]): void {
    this.inner = arrayBatchSource(
      rows.map((row, index) => ({ row, index })),
      { batchSize: this.batchSize, collate: this.collate, shuffle: this.options.shuffle, seed: this.options.seed },
    );
  }

  /** True once {@link DeferredBatchSource.setRows} was called. */
  get ready(): boolean {
    return this.inner !== undefined;
  }

  /** Micro-batches per epoch. */
  get numBatches(): number {
    return this.source().numBatches;
  }

  /** The micro-batches of epoch `epoch`. */
  batches(epoch: number): Iterable<TBatch> | AsyncIterable<TBatch> {
    return this.source().batches(epoch);
  }

  private source(): BatchSource<TBatch> {
    if (!this.inner) throw new ConfigError(`${this.what} is not prepared yet (call train() or evaluate())`);
    return this.inner;
  }
}

/** A copy of `o` without its `undefined` fields (so they do not override defaults). */
export function definedFields<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * A trainer's data sources: `trainDataset` shuffled per epoch and, when there is an eval dataset,
 * `evalDataset` in order; both in micro-batches of `perDeviceTrainBatchSize`, seeded by `seed`.
 * @param collateFor the collate function of each split.
 */
export function deferredSources<TRow, TBatch>(
  args: { perDeviceTrainBatchSize: number; seed: number },
  hasEval: boolean,
  collateFor: (split: "train" | "eval") => (rows: Array<{ row: TRow; index: number }>) => TBatch,
): { trainSource: DeferredBatchSource<TRow, TBatch>; evalSource: DeferredBatchSource<TRow, TBatch> | undefined } {
  const size = args.perDeviceTrainBatchSize;
  return {
    trainSource: new DeferredBatchSource("trainDataset", size, collateFor("train"), { shuffle: true, seed: args.seed }),
    evalSource: hasEval
      ? new DeferredBatchSource("evalDataset", size, collateFor("eval"), { shuffle: false, seed: args.seed })
      : undefined,
  };
}
