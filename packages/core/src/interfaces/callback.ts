import type { RngState } from "../rng/index.js";
import type { TrainingArgs } from "./trainer.js";
import type { GradientHook } from "./gradient-hook.js";

/**
 * Progress of a training run, as transformers' `TrainerState`. Callbacks read it; only the
 * trainer writes it. It is saved as `trainer_state.json` with HF's snake_case field names
 * (see `serializeTrainerState`).
 */
export interface TrainerState {
  /** Fractional epoch: `epoch + stepInEpoch / stepsPerEpoch`. */
  epoch: number;
  /** Optimizer updates done so far. */
  globalStep: number;
  /** Total optimizer updates the run will do. */
  maxSteps: number;
  /** Optimizer updates per epoch. */
  numUpdateStepsPerEpoch: number;
  /** Epochs the run will do. */
  numTrainEpochs: number;
  /** Log every this many steps. */
  loggingSteps: number;
  /** Evaluate every this many steps. */
  evalSteps: number;
  /** Save every this many steps. */
  saveSteps: number;
  /** Micro-batch size per forward pass. */
  trainBatchSize: number;
  /** Every `onLog` payload, each with its `step`. */
  logHistory: Array<Record<string, number>>;
  /** Best value of `metricForBestModel` seen in evaluation, or null. */
  bestMetric: number | null;
  /** Step at which {@link TrainerState.bestMetric} was seen, or null. */
  bestGlobalStep: number | null;
  /** Checkpoint directory saved at the best metric, or null. */
  bestModelCheckpoint: string | null;
  /** Attention-mask tokens consumed so far (TRL's `num_tokens`). */
  numInputTokensSeen: number;
  /** Floating-point operations done so far (0 when unknown). */
  totalFlos: number;
  /** Always true: prefkit trains in one process. */
  isLocalProcessZero: boolean;
  /** Always true: prefkit trains in one process. */
  isWorldProcessZero: boolean;
  /** State of the trainer's RNG at the last save, or null. */
  rngState: RngState | null;
  /** Opaque per-callback state that should survive a resume, keyed by callback name. */
  statefulCallbacks: Record<string, unknown>;
}

/**
 * Flags through which callbacks steer the loop (transformers' `TrainerControl`). A callback
 * never calls into the trainer; it sets a flag and the loop acts on it after the event.
 */
export interface TrainerControl {
  /** Stop training after the current step. */
  shouldTrainingStop: boolean;
  /** Leave the current epoch after the current step. */
  shouldEpochStop: boolean;
  /** Save a checkpoint after the current step. */
  shouldSave: boolean;
  /** Run evaluation after the current step. */
  shouldEvaluate: boolean;
  /** Log the averaged metrics after the current step. */
  shouldLog: boolean;
}

/** A callback event that carries no payload. */
export type CallbackHook<TArgs extends TrainingArgs = TrainingArgs> = (
  args: Readonly<TArgs>,
  state: Readonly<TrainerState>,
  control: TrainerControl,
) => void | Promise<void>;

/** A callback event with an event-specific payload. */
export type CallbackHookWith<TPayload, TArgs extends TrainingArgs = TrainingArgs> = (
  args: Readonly<TArgs>,
  state: Readonly<TrainerState>,
  control: TrainerControl,
  payload: TPayload,
) => void | Promise<void>;

/** Payload of `onLog`. */
export interface LogPayload {
  /** The logged values (TRL names, e.g. `loss`, `grad_norm`, `eval_loss`), without `step`. */
  logs: Record<string, number>;
}

/** Payload of `onEvaluate`. */
export interface EvaluatePayload {
  /** Evaluation metrics, already prefixed (`eval_loss`, `eval_rewards/margins`). */
  metrics: Record<string, number>;
}

/** Payload of `onSave`. */
export interface SavePayload {
  /** The checkpoint directory that was just written (`.../checkpoint-N`). */
  checkpointDir: string;
}

/**
 * A training callback (transformers' `TrainerCallback`). Every hook is optional and may be
 * async; the trainer awaits the callbacks of one event in registration order.
 * Progress bars, loggers, early stopping and checkpoint policies are all callbacks.
 */
export interface Callback<TArgs extends TrainingArgs = TrainingArgs> {
  /** Name used in logs and as the key of {@link TrainerState.statefulCallbacks}. */
  readonly name?: string;
  /** The trainer has been constructed. */
  onInitEnd?: CallbackHook<TArgs>;
  /** Training starts (after a resume has restored state). */
  onTrainBegin?: CallbackHook<TArgs>;
  /** An epoch starts. */
  onEpochBegin?: CallbackHook<TArgs>;
  /** An epoch ended. */
  onEpochEnd?: CallbackHook<TArgs>;
  /** An optimizer step (one gradient-accumulation cycle) starts. */
  onStepBegin?: CallbackHook<TArgs>;
  /** A micro-batch other than the last of an accumulation cycle has been back-propagated. */
  onSubstepEnd?: CallbackHook<TArgs>;
  /** An optimizer step ended; `state.globalStep` is already incremented. */
  onStepEnd?: CallbackHook<TArgs>;
  /** Evaluation finished. */
  onEvaluate?: CallbackHookWith<EvaluatePayload, TArgs>;
  /** Values were logged (also appended to `state.logHistory`). */
  onLog?: CallbackHookWith<LogPayload, TArgs>;
  /** A checkpoint was written. */
  onSave?: CallbackHookWith<SavePayload, TArgs>;
  /** Training ended. */
  onTrainEnd?: CallbackHook<TArgs>;
  /**
   * State to carry across a resume (e.g. early stopping's patience counter), stored in
   * `trainer_state.json` under `stateful_callbacks[name]`. Needs a `name`.
   */
  getState?(): unknown;
  /** Restore what {@link Callback.getState} returned, when resuming from a checkpoint. */
  loadState?(state: unknown): void;
  /**
   * A {@link GradientHook} the trainer runs between back-propagation and the optimizer step (e.g.
   * `NanGuardCallback` with `action: "skip"` vetoes non-finite steps). The one way a callback acts on a
   * step before it is applied; everything else goes through the control flags.
   */
  readonly gradientHook?: GradientHook;
}

/** Names of the callback events, in the order a run first fires them. */
export const CALLBACK_EVENTS = [
  "onInitEnd",
  "onTrainBegin",
  "onEpochBegin",
  "onStepBegin",
  "onSubstepEnd",
  "onStepEnd",
  "onEvaluate",
  "onLog",
  "onSave",
  "onEpochEnd",
  "onTrainEnd",
] as const;

/** One of {@link CALLBACK_EVENTS}. */
export type CallbackEventName = (typeof CALLBACK_EVENTS)[number];
