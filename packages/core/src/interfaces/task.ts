import type * as tf from "@tensorflow/tfjs-core";
import type { Rng } from "../rng/index.js";
import type { TrainerState } from "./callback.js";
import type { LossOutput } from "./loss.js";

/**
 * What the trainer needs of the model it trains: its weights by name, the ones to update, and a way to
 * save them. `CausalLM`, `SequenceClassifier` and a policy + value pair all satisfy it.
 */
export interface TrainableModel {
  /** Every weight by its HF name. */
  namedParameters(): Map<string, tf.Variable>;
  /** The variables an optimizer should update (frozen weights excluded). */
  trainableVariables(): tf.Variable[];
  /** Write the model in HF layout; writes only its own files (see the implementations' docs). */
  savePretrained(dir: string): Promise<void>;
}

/** Whether a task computes for training (under a gradient tape) or for evaluation. */
export interface ComputeLossContext {
  /** True inside the training step; false in evaluation (no gradients are taken). */
  training: boolean;
}

/** What a task's `compute` returns for one micro-batch. */
export interface StepOutput extends LossOutput {
  /** Attention-mask tokens in the micro-batch, added to `state.numInputTokensSeen`. */
  numTokens?: number;
}

/** What the trainer tells a task when training or evaluation starts. */
export interface TaskContext {
  /** The trainer state (after a resume restored it). */
  readonly state: Readonly<TrainerState>;
  /** The trainer's seeded RNG (saved in checkpoints): sampling and dropout seeds come from it. */
  readonly rng: Rng;
  /** The learning rate the coming optimizer steps apply (the schedule's current value; TRL's PPO logs it as `lr`). */
  readonly learningRate: number;
  /** Where warnings go. */
  warn(message: string): void;
}

/**
 * The optimizer steps of one on-policy update (PPO), as a task's {@link TrainingTask.rollout} returns them:
 * the trainer runs each inner array as one optimizer step (accumulation, clipping, gradient hooks) and
 * steps the learning-rate schedule once per update.
 */
export interface RolloutUpdate<TMicro> {
  /** The micro-batches of each optimizer step, in order. */
  steps: TMicro[][];
  /** Update-level metrics (e.g. `objective/kl`), logged with the step's. */
  metrics?: Record<string, number>;
  /** Attention-mask tokens of the rollout. */
  numTokens?: number;
  /**
   * Metrics computed once every optimizer step ran, from each micro-batch's metric values
   * (`[step][micro]`), e.g. PPO's `val/ratio_var`.
   */
  finish?(microMetrics: Array<Array<Record<string, number>>>): Record<string, number>;
  /**
   * Names among `metrics` and `finish`'s metrics that a training log reports as of its last step instead of
   * averaging them over the logging window: counters and rates such as TRL's `episode`, `eps` and `lr`.
   */
  latest?: readonly string[];
}

/**
 * The per-method work of a training step, plugged into core's generic trainer. A task turns a data
 * micro-batch into a loss: it runs the forward passes (policy, and reference outside the gradient tape),
 * calls the registered {@link Loss} with the inputs of its batch kind, and returns the loss with TRL's
 * metrics. The trainer runs everything else (accumulation, clipping, schedule, logging, evaluation,
 * checkpoints, resume) once for every method.
 *
 * @typeParam TBatch what the training data source yields.
 * @typeParam TMicro what `compute` takes: `TBatch` for offline methods; an on-policy task's
 *   {@link TrainingTask.rollout} turns `TBatch`es (prompts) into `TMicro`s (slices of the rollout).
 */
export interface TrainingTask<TBatch, TMicro = TBatch> {
  /** Name used in logs and as the key of the task's checkpointed state. */
  readonly name: string;
  /** Called once before the first step or evaluation (after a resume restored state): precompute, warm up. */
  prepare?(context: TaskContext): Promise<void> | void;
  /** Runs outside the gradient tape before a step's micro-batches are differentiated (TRL's `no_grad` reference pass). */
  beforeStep?(batches: TMicro[]): Promise<void> | void;
  /** On-policy methods: generate and score, returning the optimizer steps of this update. */
  rollout?(batches: TBatch[], context: TaskContext): Promise<RolloutUpdate<TMicro>>;
  /** Loss and metrics of one micro-batch; inside `tf.variableGrads` when `ctx.training` (tf ops only, no syncs). */
  compute(batch: TMicro, ctx: ComputeLossContext): StepOutput;
  /** Metrics of one evaluation batch (already numbers, without prefix). Default: `compute` without gradients. */
  evaluateBatch?(batch: TBatch, context: TaskContext): Promise<Record<string, number>>;
  /** Weight of a micro-batch in its accumulation group (rows or tokens). Default 1. */
  batchWeight?(batch: TMicro): number;
  /** State to checkpoint (e.g. PPO's KL controller), restored by {@link TrainingTask.loadState} on resume. */
  getState?(): unknown;
  /** Restore what {@link TrainingTask.getState} returned. */
  loadState?(state: unknown): void;
}
