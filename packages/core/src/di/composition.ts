/**
 * The composition root of a run: the one place where a run's parts are registered in a child container
 * and the {@link Trainer} is resolved from it. Methods (`@prefkit/losses`' DPO, SFT, reward, PPO, …) describe
 * themselves as a {@link RunDefinition}; users override any part by registering it in the parent container
 * they pass (an optimizer, a reference model, callbacks, plugins) — no subclassing.
 *
 * ```
 *  parent container (optional, the user's)          run container (one per trainer)
 *  ─────────────────────────────────────            ─────────────────────────────────────────────
 *  OPTIMIZER? SCHEDULER? REFERENCE_MODEL?  ──────▶  TRAINING_ARGS  TOKENIZER  ENGINE  LOSS_REGISTRY
 *  CALLBACKS* GRADIENT_HOOKS* PLUGINS*              CALLBACKS* (method's, parent's, user's)
 *                                                   PLUGINS* ─register(ctx)─▶ losses, CALLBACKS*,
 *                                                                 GRADIENT_HOOKS*, model transforms
 *                                                   MODEL (transformed)  REFERENCE_MODEL?
 *                                                   LOSS (registry × lossType)  OPTIMIZER  SCHEDULER
 *                                                   TASK (method: model, reference, loss, tokenizer)
 *                                                   TRAIN_DATA  EVAL_DATA?  ─▶ TRAINER_PARTS ─▶ Trainer
 * ```
 * @module
 */
import "reflect-metadata";
import { type DependencyContainer, instanceCachingFactory, container as rootContainer } from "tsyringe";
import type { Engine } from "../engine/engine.js";
import type { tf } from "../engine/tf.js";
import type { Callback } from "../interfaces/callback.js";
import type { GradientHook } from "../interfaces/gradient-hook.js";
import type { Loss } from "../interfaces/loss.js";
import type { CausalLM } from "../interfaces/model.js";
import type { Plugin } from "../interfaces/plugin.js";
import type { TrainableModel, TrainingTask } from "../interfaces/task.js";
import type { TokenizerLike } from "../interfaces/tokenizer.js";
import type { BatchSource, TrainingArgs } from "../interfaces/trainer.js";
import { adamWFromArgs } from "../optim/adamw.js";
import type { SchedulerFactory } from "../optim/schedules.js";
import { defaultSchedule } from "../trainer/plan.js";
import { resolveTrainingArgs } from "../trainer/args.js";
import type { TrainerParts } from "../trainer/parts.js";
import { Trainer } from "../trainer/trainer.js";
import { createRunContainer, installPlugins, lossRegistryOf, resolveAllOrEmpty } from "./container.js";
import type { LossRegistry } from "./loss-registry.js";
import {
  CALLBACKS,
  ENGINE,
  EVAL_DATA,
  GRADIENT_HOOKS,
  LOSS,
  MODEL,
  OPTIMIZER,
  PLUGINS,
  REFERENCE_MODEL,
  SCHEDULER,
  TASK,
  TOKENIZER,
  TRAIN_DATA,
  TRAINER_PARTS,
  TRAINING_ARGS,
} from "./tokens.js";

/** The resolved parts a method's factories receive. */
export interface RunParts<TArgs extends TrainingArgs> {
  /** The resolved config. */
  args: TArgs;
  /** The model after every plugin transform. */
  model: CausalLM;
  /** A reference model, when one was given or registered. */
  referenceModel: CausalLM | undefined;
  /** The tokenizer, when one was given or registered. */
  tokenizer: TokenizerLike | undefined;
  /** The run's loss registry. */
  registry: LossRegistry;
  /** The run container (for method-specific extension tokens such as reward functions). */
  container: DependencyContainer;
}

/** How a method (DPO, SFT, …) composes a run. Built by `@prefkit/losses`; users call `createTrainer` instead. */
export interface RunDefinition<TBatch, TArgs extends TrainingArgs, TMicro = TBatch> {
  /** Method name, shown to plugins (`PluginContext.method`). */
  method: string;
  /** The config (loop fields missing from it take `DEFAULT_TRAINING_ARGS`). */
  args: TArgs;
  /** The model to train (before plugin transforms). */
  model: CausalLM;
  /** The reference model, if the user gave one (else a parent's `REFERENCE_MODEL`, if any). */
  referenceModel?: CausalLM;
  /** The tokenizer, if any (else a parent's `TOKENIZER`). */
  tokenizer?: TokenizerLike;
  /** Callbacks for this run (after the parent container's). */
  callbacks?: readonly Callback<any>[];
  /** Plugins for this run (after the parent container's). */
  plugins?: readonly Plugin[];
  /** The optimizer (else a parent's `OPTIMIZER`, else AdamW from the args). */
  optimizer?: tf.Optimizer;
  /** The schedule (else a parent's `SCHEDULER`, else the one `args.lrSchedulerType` names). */
  scheduler?: SchedulerFactory;
  /** Callbacks the method itself adds (e.g. DPO's ln 2 warning): first, before the parent's, the user's and the plugins'. */
  methodCallbacks?: readonly Callback<any>[];
  /** Builds the run's loss from the registry (registered under `LOSS`). */
  loss(run: RunParts<TArgs>): Loss<any, any>;
  /** Builds the task from the parts and the loss (registered under `TASK`). */
  task(run: RunParts<TArgs>, loss: Loss<any, any>): TrainingTask<TBatch, TMicro>;
  /** The data sources (registered under `TRAIN_DATA` / `EVAL_DATA`). */
  data(
    run: RunParts<TArgs>,
    task: TrainingTask<TBatch, TMicro>,
  ): { train: BatchSource<TBatch>; eval?: BatchSource<TBatch> };
  /** What the optimizer trains and checkpoints save, when it is not the model itself (PPO's policy + value). */
  trainedModel?(run: RunParts<TArgs>, task: TrainingTask<TBatch, TMicro>): TrainableModel;
  /** Total optimizer steps when the method counts them its own way. */
  totalSteps?: TrainerParts<TBatch, TArgs, TMicro>["totalSteps"];
  /** Where warnings go. */
  warn?: (message: string) => void;
}

/** Where a run's container comes from. */
export interface ComposeOptions {
  /**
   * The parent of the run container: register an `OPTIMIZER`, `SCHEDULER`, `REFERENCE_MODEL`, `TOKENIZER`,
   * `CALLBACKS`, `GRADIENT_HOOKS` or `PLUGINS` there to override or add parts. Default: tsyringe's root.
   */
  container?: DependencyContainer;
}

function inherit(child: DependencyContainer, parent: DependencyContainer, token: symbol, extra: readonly unknown[]) {
  for (const v of [...resolveAllOrEmpty(parent, token), ...extra]) child.register(token, { useValue: v });
}

/**
 * Compose a run: a fresh child container with every part registered (see the module diagram), plugins
 * installed and the model transformed. Resolve `TRAINER_PARTS` (or the {@link Trainer}) from it.
 */
export function composeRun<TBatch, TArgs extends TrainingArgs, TMicro = TBatch>(
  def: RunDefinition<TBatch, TArgs, TMicro>,
  options: ComposeOptions = {},
): DependencyContainer {
  const parent = options.container ?? rootContainer;
  const run = createRunContainer(parent);
  // Methods resolve their own config; a user's definition may give a partial one: fill the loop defaults.
  run.register(TRAINING_ARGS, { useValue: resolveTrainingArgs<TArgs>(def.args) });
  if (def.tokenizer !== undefined) run.register(TOKENIZER, { useValue: def.tokenizer });
  if (def.referenceModel !== undefined) run.register(REFERENCE_MODEL, { useValue: def.referenceModel });
  if (def.optimizer !== undefined) run.register(OPTIMIZER, { useValue: def.optimizer });
  else if (!run.isRegistered(OPTIMIZER, true)) {
    run.register(OPTIMIZER, {
      useFactory: instanceCachingFactory((c) => adamWFromArgs(c.resolve<TArgs>(TRAINING_ARGS))),
    });
  }
  if (def.scheduler !== undefined) run.register(SCHEDULER, { useValue: def.scheduler });
  else if (!run.isRegistered(SCHEDULER, true)) {
    run.register(SCHEDULER, {
      useFactory: instanceCachingFactory((c) => {
        const a = c.resolve<TArgs>(TRAINING_ARGS);
        // As HF's Trainer: the schedule scales the optimizer's own learning rate (args' for the default AdamW).
        const peak = (c.resolve<tf.Optimizer & { learningRate?: number }>(OPTIMIZER).learningRate ??
          a.learningRate) as number;
        const factory: SchedulerFactory = (total) => defaultSchedule(a, peak, total);
        return factory;
      }),
    });
  }
  for (const cb of def.methodCallbacks ?? []) run.register(CALLBACKS, { useValue: cb });
  inherit(run, parent, CALLBACKS, def.callbacks ?? []);
  inherit(run, parent, GRADIENT_HOOKS, []);
  const plugins = [...resolveAllOrEmpty<Plugin>(parent, PLUGINS), ...(def.plugins ?? [])];
  const transforms = installPlugins(run, plugins, def.method);
  run.register(MODEL, { useValue: transforms.apply(def.model) });

  const parts = (c: DependencyContainer): RunParts<TArgs> => ({
    args: c.resolve<TArgs>(TRAINING_ARGS),
    model: c.resolve<CausalLM>(MODEL),
    referenceModel: c.isRegistered(REFERENCE_MODEL, true) ? c.resolve<CausalLM>(REFERENCE_MODEL) : undefined,
    tokenizer: c.isRegistered(TOKENIZER, true) ? c.resolve<TokenizerLike>(TOKENIZER) : undefined,
    registry: lossRegistryOf(c),
    container: c,
  });
  run.register(LOSS, { useFactory: instanceCachingFactory((c) => def.loss(parts(c))) });
  run.register(TASK, { useFactory: instanceCachingFactory((c) => def.task(parts(c), c.resolve(LOSS))) });
  const data = instanceCachingFactory((c) => def.data(parts(c), c.resolve(TASK)));
  run.register(TRAIN_DATA, { useFactory: (c) => data(c).train });
  run.register(EVAL_DATA, { useFactory: (c) => data(c).eval });
  run.register(TRAINER_PARTS, {
    useFactory: instanceCachingFactory((c): TrainerParts<TBatch, TArgs, TMicro> => {
      const task = c.resolve<TrainingTask<TBatch, TMicro>>(TASK);
      return {
        args: c.resolve<TArgs>(TRAINING_ARGS),
        model: def.trainedModel?.(parts(c), task) ?? c.resolve<CausalLM>(MODEL),
        task,
        trainData: c.resolve<BatchSource<TBatch>>(TRAIN_DATA),
        evalData: c.resolve<BatchSource<TBatch> | undefined>(EVAL_DATA),
        callbacks: resolveAllOrEmpty<Callback<any>>(c, CALLBACKS),
        gradientHooks: resolveAllOrEmpty<GradientHook>(c, GRADIENT_HOOKS),
        optimizer: c.resolve<tf.Optimizer>(OPTIMIZER),
        scheduler: c.resolve<SchedulerFactory>(SCHEDULER),
        engine: c.resolve<Engine>(ENGINE),
        ...(def.totalSteps !== undefined ? { totalSteps: def.totalSteps } : {}),
        ...(def.warn !== undefined ? { warn: def.warn } : {}),
      };
    }),
  });
  return run;
}

/** Compose a run (see {@link composeRun}) and resolve its generic {@link Trainer}. */
export function resolveTrainer<TBatch, TArgs extends TrainingArgs, TMicro = TBatch>(
  def: RunDefinition<TBatch, TArgs, TMicro>,
  options: ComposeOptions = {},
): Trainer<TBatch, TArgs, TMicro> {
  const run = composeRun(def, options);
  // Resolve the parts first: tsyringe wraps errors raised while injecting a constructor parameter, and a
  // bad config must surface as the ConfigError it is (the CLI maps it to its exit code).
  run.resolve(TRAINER_PARTS);
  return run.resolve<Trainer<TBatch, TArgs, TMicro>>(Trainer);
}

/**
 * The {@link TrainerParts} of a composed run (see {@link composeRun}): what a trainer class that composes its own
 * run (the TRL façades) passes to `super`. A bad config surfaces as the ConfigError it is.
 */
export function composedParts<TBatch, TArgs extends TrainingArgs, TMicro = TBatch>(
  def: RunDefinition<TBatch, TArgs, TMicro>,
  options: ComposeOptions = {},
): TrainerParts<TBatch, TArgs, TMicro> {
  return composeRun(def, options).resolve<TrainerParts<TBatch, TArgs, TMicro>>(TRAINER_PARTS);
}
