/**
 * What the generic `Trainer` is built from.
 * @module
 */
import type { Engine } from "../engine/engine.js";
import type { tf } from "../engine/tf.js";
import type { Callback } from "../interfaces/callback.js";
import type { GradientHook } from "../interfaces/gradient-hook.js";
import type { TrainableModel, TrainingTask } from "../interfaces/task.js";
import type { BatchSource, TrainingArgs } from "../interfaces/trainer.js";
import type { SchedulerFactory } from "../optim/schedules.js";

/** A tfjs optimizer whose learning rate the trainer can set every step (AdamW and tfjs's own have one). */
export type TunableOptimizer = tf.Optimizer & { learningRate: number };

/**
 * What a `Trainer` is built from: the parts a composition root resolves from a run container
 * (`TRAINER_PARTS`), or that a test passes to `new Trainer(...)` directly.
 */
export interface TrainerParts<TBatch, TArgs extends TrainingArgs = TrainingArgs, TMicro = TBatch> {
  /** The config; missing loop fields take `DEFAULT_TRAINING_ARGS`. */
  args: Partial<TArgs>;
  /** The model whose trainable variables are optimised and which checkpoints save. */
  model: TrainableModel;
  /** The per-method step: forward passes, loss, metrics (and a rollout for on-policy methods). */
  task: TrainingTask<TBatch, TMicro>;
  /** Training micro-batches (prompt chunks for on-policy tasks). */
  trainData: BatchSource<TBatch>;
  /** Evaluation micro-batches. */
  evalData?: BatchSource<TBatch>;
  /** Callbacks, called in order after the default flow callback. */
  callbacks?: readonly Callback<any>[];
  /** Gradient hooks (loss scaling, step vetoes), run before callbacks' hooks. */
  gradientHooks?: readonly GradientHook[];
  /** The optimizer; default AdamW from the args. */
  optimizer?: tf.Optimizer;
  /** The learning-rate schedule; default the one `args.lrSchedulerType` names. */
  scheduler?: SchedulerFactory;
  /** The engine, made ready before training; default `defaultEngine`. */
  engine?: Engine;
  /** Total optimizer steps when the method counts them its own way (PPO's `totalEpisodes`); else from the args. */
  totalSteps?: (stepsPerEpoch: number) => number | undefined;
  /** Where warnings go. Default `console.warn`. */
  warn?: (message: string) => void;
}
