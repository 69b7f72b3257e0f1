import type { LossOutput } from "./loss.js";

/** Learning-rate schedule names, as transformers' `SchedulerType`. */
export type LrSchedulerType = "constant" | "constant_with_warmup" | "linear" | "cosine";

/** When to log, evaluate or save, as transformers' `IntervalStrategy`. */
export type IntervalStrategy = "no" | "steps" | "epoch";

/**
 * The loop settings every trainer shares: transformers' `TrainingArguments` in camelCase,
 * with the same defaults. Trainer configs (`DPOConfig`, `RewardConfig`, ...) extend it.
 */
export interface TrainingArgs {
  /** Where checkpoints (`checkpoint-N/`) are written. Default `"runs/prefkit"`. */
  outputDir: string;
  /** Peak learning rate of AdamW. Default 5e-5 (HF); trainer configs override it (DPO 1e-6). */
  learningRate: number;
  /** Decoupled weight decay of AdamW. Default 0. */
  weightDecay: number;
  /** AdamW β₁. Default 0.9. */
  adamBeta1: number;
  /** AdamW β₂. Default 0.999. */
  adamBeta2: number;
  /** AdamW ε. Default 1e-8. */
  adamEpsilon: number;
  /** Clip gradients to this global L2 norm; 0 or less disables clipping. Default 1.0. */
  maxGradNorm: number;
  /** Epochs to train when `maxSteps` is not set. Default 3. */
  numTrainEpochs: number;
  /** Total optimizer steps; overrides `numTrainEpochs` when > 0. Default -1. */
  maxSteps: number;
  /** Learning-rate schedule. Default `"linear"`. */
  lrSchedulerType: LrSchedulerType;
  /** Warm-up as a fraction of total steps (used when `warmupSteps` is 0). Default 0. */
  warmupRatio: number;
  /** Warm-up steps; overrides `warmupRatio` when > 0. Default 0. */
  warmupSteps: number;
  /** Micro-batches per optimizer step. Default 1. */
  gradientAccumulationSteps: number;
  /** When to log. Default `"steps"`. */
  loggingStrategy: IntervalStrategy;
  /** Log every N optimizer steps. Default 500 (HF); TRL trainers use 10. */
  loggingSteps: number;
  /** Also log after the first step. Default false. */
  loggingFirstStep: boolean;
  /** When to evaluate. Default `"no"`. */
  evalStrategy: IntervalStrategy;
  /** Evaluate every N steps; defaults to `loggingSteps` when unset. */
  evalSteps: number | undefined;
  /** When to save. Default `"steps"`. */
  saveStrategy: IntervalStrategy;
  /** Save every N steps. Default 500. */
  saveSteps: number;
  /** Keep at most this many checkpoints (the best one is never deleted). Default: keep all. */
  saveTotalLimit: number | undefined;
  /** Metric (without the `eval_` prefix) that decides the best checkpoint, e.g. `"loss"`. */
  metricForBestModel: string | undefined;
  /** Whether a larger `metricForBestModel` is better. Default: false for names ending in `loss`, else true. */
  greaterIsBetter: boolean | undefined;
  /** Seed of the data order and of the trainer's RNG. Default 42. */
  seed: number;
  /** Rows per micro-batch, informational (the data source batches). Default 8. */
  perDeviceTrainBatchSize: number;
  /** `true` resumes from the newest checkpoint in `outputDir`; a path resumes from that checkpoint. */
  resumeFromCheckpoint: string | boolean | undefined;
  /**
   * Replace an earlier run in `outputDir` (its `checkpoint-N/`, logs, reports and final model files; nothing
   * else). Without it, a fresh run into a directory holding one is refused. Default false.
   */
  overwriteOutputDir: boolean;
}

/**
 * Where a trainer's micro-batches come from. One epoch is `batches(epoch)`; it must give the
 * same order every time it is called with the same epoch, so a resumed run can skip the
 * micro-batches it already consumed and continue exactly.
 */
export interface BatchSource<TBatch> {
  /** Micro-batches per epoch. */
  readonly numBatches: number;
  /** The micro-batches of one epoch, in order. */
  batches(epoch: number): Iterable<TBatch> | AsyncIterable<TBatch>;
}

/** What a trainer's `computeLoss` returns for one micro-batch. */
export interface StepOutput extends LossOutput {
  /** Attention-mask tokens in the micro-batch, added to `state.numInputTokensSeen`. */
  numTokens?: number;
}

/** Training result, as transformers' `TrainOutput`. */
export interface TrainOutput {
  /** Optimizer steps done. */
  globalStep: number;
  /** Mean training loss over the run (steps of this process). */
  trainingLoss: number;
  /** The final log entry (`train_loss`, `train_runtime`, ...). */
  metrics: Record<string, number>;
}

/** A trainer as callers see it. */
export interface Trainer {
  /** Run the training loop (optionally resuming) and return the summary. */
  train(options?: { resumeFromCheckpoint?: string | boolean }): Promise<TrainOutput>;
  /** Evaluate on the evaluation data; metric names carry `metricKeyPrefix` (default `"eval"`). */
  evaluate(options?: { metricKeyPrefix?: string }): Promise<Record<string, number>>;
}
