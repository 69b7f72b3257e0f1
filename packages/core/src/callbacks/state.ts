import { CheckpointError } from "../errors/index.js";
import type { TrainerControl, TrainerState } from "../interfaces/callback.js";
import type { RngState } from "../rng/index.js";

/** A fresh {@link TrainerState} at step 0. */
export function createTrainerState(): TrainerState {
  return {
    epoch: 0,
    globalStep: 0,
    maxSteps: 0,
    numUpdateStepsPerEpoch: 0,
    numTrainEpochs: 0,
    loggingSteps: 500,
    evalSteps: 500,
    saveSteps: 500,
    trainBatchSize: 8,
    logHistory: [],
    bestMetric: null,
    bestGlobalStep: null,
    bestModelCheckpoint: null,
    numInputTokensSeen: 0,
    totalFlos: 0,
    isLocalProcessZero: true,
    isWorldProcessZero: true,
    rngState: null,
    statefulCallbacks: {},
  };
}

/** A fresh {@link TrainerControl} with every flag off. */
export function createTrainerControl(): TrainerControl {
  return {
    shouldTrainingStop: false,
    shouldEpochStop: false,
    shouldSave: false,
    shouldEvaluate: false,
    shouldLog: false,
  };
}

/** In-memory field ↔ `trainer_state.json` key (transformers' names). */
const FIELD_TO_KEY = {
  epoch: "epoch",
  globalStep: "global_step",
  maxSteps: "max_steps",
  numUpdateStepsPerEpoch: "num_update_steps_per_epoch",
  numTrainEpochs: "num_train_epochs",
  loggingSteps: "logging_steps",
  evalSteps: "eval_steps",
  saveSteps: "save_steps",
  trainBatchSize: "train_batch_size",
  logHistory: "log_history",
  bestMetric: "best_metric",
  bestGlobalStep: "best_global_step",
  bestModelCheckpoint: "best_model_checkpoint",
  numInputTokensSeen: "num_input_tokens_seen",
  totalFlos: "total_flos",
  isLocalProcessZero: "is_local_process_zero",
  isWorldProcessZero: "is_world_process_zero",
  rngState: "rng_state",
  statefulCallbacks: "stateful_callbacks",
} as const satisfies Record<keyof TrainerState, string>;

/**
 * The `trainer_state.json` object: the same fields with transformers' snake_case keys
 * (`global_step`, `epoch`, `log_history`, `best_metric`, ...). Log entries keep their own keys.
 */
export function serializeTrainerState(state: TrainerState): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, key] of Object.entries(FIELD_TO_KEY)) {
    out[key] = structuredClone((state as unknown as Record<string, unknown>)[field]);
  }
  return out;
}

/**
 * Parse a `trainer_state.json` object (as written by {@link serializeTrainerState}, or by
 * transformers: missing prefkit-only keys take their defaults). Throws a
 * {@link CheckpointError} naming `file` and the field when a required key is malformed.
 */
export function parseTrainerState(json: unknown, file = "trainer_state.json"): TrainerState {
  if (typeof json !== "object" || json === null) throw new CheckpointError("expected a JSON object", { file });
  const obj = json as Record<string, unknown>;
  const state = createTrainerState() as unknown as Record<string, unknown>;
  for (const [field, key] of Object.entries(FIELD_TO_KEY)) {
    if (key in obj && obj[key] !== undefined) state[field] = structuredClone(obj[key]);
  }
  for (const key of ["global_step", "epoch"] as const) {
    if (typeof obj[key] !== "number" || !Number.isFinite(obj[key])) {
      throw new CheckpointError(`expected a number, got ${JSON.stringify(obj[key])}`, { file, field: key });
    }
  }
  if (!Array.isArray(state["logHistory"])) {
    throw new CheckpointError("expected an array", { file, field: "log_history" });
  }
  const rng = state["rngState"] as RngState | null;
  if (rng !== null && (typeof rng !== "object" || !Array.isArray(rng.s))) {
    throw new CheckpointError("expected an RNG state object or null", { file, field: "rng_state" });
  }
  return state as unknown as TrainerState;
}
