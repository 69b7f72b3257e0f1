/** Learning-rate schedule names, as transformers' `SchedulerType`. */
export type LrSchedulerType = "constant" | "constant_with_warmup" | "linear" | "cosine";

/** When to log, evaluate or save, as transformers' `IntervalStrategy`. */
export type IntervalStrategy = "no" | "steps" | "epoch";

/**
 * The loop settings every trainer shares: transformers' `TrainingArguments` in camelCase,
 * with the same defaults. Trainer configs (`DPOConfig`, `RewardConfig`, ...) extend it.
 */
export interface TrainingArgs {
  /**
   * Where checkpoints (`checkpoint-N/`) are written.
   * @defaultValue "runs/prefkit"
   */
  outputDir: string;
  /**
   * Peak learning rate of AdamW (HF's default; trainer configs override it: DPO 1e-6).
   * @defaultValue 5e-5
   */
  learningRate: number;
  /**
   * Decoupled weight decay of AdamW.
   * @defaultValue 0
   */
  weightDecay: number;
  /**
   * AdamW β₁.
   * @defaultValue 0.9
   */
  adamBeta1: number;
  /**
   * AdamW β₂.
   * @defaultValue 0.999
   */
  adamBeta2: number;
  /**
   * AdamW ε.
   * @defaultValue 1e-8
   */
  adamEpsilon: number;
  /**
   * Clip gradients to this global L2 norm; 0 or less disables clipping.
   * @defaultValue 1
   */
  maxGradNorm: number;
  /**
   * Epochs to train when `maxSteps` is not set.
   * @defaultValue 3
   */
  numTrainEpochs: number;
  /**
   * Total optimizer steps; overrides `numTrainEpochs` when > 0.
   * @defaultValue -1
   */
  maxSteps: number;
  /**
   * Learning-rate schedule.
   * @defaultValue "linear"
   */
  lrSchedulerType: LrSchedulerType;
  /**
   * Warm-up as a fraction of total steps (used when `warmupSteps` is 0).
   * @defaultValue 0
   */
  warmupRatio: number;
  /**
   * Warm-up steps; overrides `warmupRatio` when > 0.
   * @defaultValue 0
   */
  warmupSteps: number;
  /**
   * Micro-batches per optimizer step.
   * @defaultValue 1
   */
  gradientAccumulationSteps: number;
  /**
   * Gradient checkpointing (HF's `gradient_checkpointing`): keep only each layer's input in the forward
   * pass and recompute the layer in the backward pass, trading one more forward pass of compute for the
   * activation memory of all but one layer. The model must support it (prefkit's models do, in the fused
   * native decoder).
   * @defaultValue false
   */
  gradientCheckpointing: boolean;
  /**
   * When to log.
   * @defaultValue "steps"
   */
  loggingStrategy: IntervalStrategy;
  /**
   * Log every N optimizer steps (HF's default; TRL's trainers use 10).
   * @defaultValue 500
   */
  loggingSteps: number;
  /**
   * Also log after the first step.
   * @defaultValue false
   */
  loggingFirstStep: boolean;
  /**
   * When to evaluate.
   * @defaultValue "no"
   */
  evalStrategy: IntervalStrategy;
  /**
   * Evaluate every N steps; defaults to `loggingSteps` when unset.
   * @defaultValue undefined
   */
  evalSteps: number | undefined;
  /**
   * When to save.
   * @defaultValue "steps"
   */
  saveStrategy: IntervalStrategy;
  /**
   * Save every N steps.
   * @defaultValue 500
   */
  saveSteps: number;
  /**
   * Keep at most this many checkpoints (the best one is never deleted). Unset keeps all.
   * @defaultValue undefined
   */
  saveTotalLimit: number | undefined;
  /**
   * Metric (without the `eval_` prefix) that decides the best checkpoint, e.g. `"loss"`.
   * @defaultValue undefined
   */
  metricForBestModel: string | undefined;
  /**
   * Whether a larger `metricForBestModel` is better. Unset: false for names ending in `loss`, else true.
   * @defaultValue undefined
   */
  greaterIsBetter: boolean | undefined;
  /**
   * Seed of the data order and of the trainer's RNG.
   * @defaultValue 42
   */
  seed: number;
  /**
   * Rows per micro-batch, informational (the data source batches).
   * @defaultValue 8
   */
  perDeviceTrainBatchSize: number;
  /**
   * `true` resumes from the newest checkpoint in `outputDir`; a path resumes from that checkpoint.
   * @defaultValue undefined
   */
  resumeFromCheckpoint: string | boolean | undefined;
  /**
   * Replace an earlier run in `outputDir` (its `checkpoint-N/`, logs, reports and final model files; nothing
   * else). Without it, a fresh run into a directory holding one is refused.
   * @defaultValue false
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
  /**
   * Load and tokenise the rows, once, before `numBatches` or `batches` is read (the trainer awaits it when
   * training or evaluation starts). Sources over ready rows need not implement it.
   */
  prepare?(): Promise<void>;
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
