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

/**
 * The fields of transformers' `TrainerState` dataclass (`transformers/trainer_callback.py`, v4.52), which are
 * exactly the keys of `trainer_state.json`: `TrainerState.load_from_json` passes every key to the dataclass,
 * so one key more fails there.
 */
export const HF_TRAINER_STATE_FIELDS: readonly string[] = Object.freeze([
  "epoch",
  "global_step",
  "max_steps",
  "logging_steps",
  "eval_steps",
  "save_steps",
  "train_batch_size",
  "num_train_epochs",
  "num_input_tokens_seen",
  "total_flos",
  "log_history",
  "best_metric",
  "best_global_step",
  "best_model_checkpoint",
  "is_local_process_zero",
  "is_world_process_zero",
  "is_hyper_param_search",
  "trial_name",
  "trial_params",
  "stateful_callbacks",
]);

/** In-memory field ↔ `trainer_state.json` key, for the fields transformers' `TrainerState` has. */
const FIELD_TO_KEY = {
  epoch: "epoch",
  globalStep: "global_step",
  maxSteps: "max_steps",
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
} as const satisfies Partial<Record<keyof TrainerState, string>>;

/** In-memory field ↔ `prefkit_state.json` key, for prefkit's own fields. */
const PREFKIT_FIELD_TO_KEY = {
  numUpdateStepsPerEpoch: "num_update_steps_per_epoch",
  rngState: "rng_state",
} as const satisfies Partial<Record<keyof TrainerState, string>>;

/** `format` of `prefkit_state.json`. */
export const PREFKIT_STATE_FORMAT = "prefkit-trainer-state/1";

/**
 * Whether a `statefulCallbacks` entry is a callback's state that transformers' layout can hold: its key looks
 * like a class name (`EarlyStoppingCallback`) and its state is a JSON object. The trainer's own records
 * (`BaseTrainer.skippedSteps`, `gradientHook:<name>`, `DPOTrainer.lossAtLn2`, …) are not.
 */
function isCallbackEntry(key: string, value: unknown): value is Record<string, unknown> {
  return /^[A-Za-z_$][\w$]*$/.test(key) && isPlainObject(value);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Options of {@link serializeTrainerState}. */
export interface SerializeTrainerStateOptions {
  /** The loop's control flags, stored as transformers does under `stateful_callbacks.TrainerControl`. */
  control?: TrainerControl;
}

/**
 * The `trainer_state.json` object: exactly transformers' `TrainerState` fields ({@link HF_TRAINER_STATE_FIELDS})
 * with their snake_case keys, so `TrainerState.load_from_json` reads it. Log entries keep their own keys.
 * `stateful_callbacks` holds, in transformers' `{ClassName: {"args": {...}, "attributes": {...}}}` shape, the
 * control flags (`TrainerControl`) and each callback state that fits that shape (see
 * {@link serializePrefkitState} for the rest).
 */
export function serializeTrainerState(
  state: TrainerState,
  options: SerializeTrainerStateOptions = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, key] of Object.entries(FIELD_TO_KEY)) {
    out[key] = structuredClone((state as unknown as Record<string, unknown>)[field]);
  }
  out["is_hyper_param_search"] = false;
  out["trial_name"] = null;
  out["trial_params"] = null;
  const callbacks: Record<string, unknown> = {};
  if (options.control) {
    const c = options.control;
    callbacks["TrainerControl"] = {
      args: {
        should_epoch_stop: c.shouldEpochStop,
        should_evaluate: c.shouldEvaluate,
        should_log: c.shouldLog,
        should_save: c.shouldSave,
        should_training_stop: c.shouldTrainingStop,
      },
      attributes: {},
    };
  }
  for (const [key, value] of Object.entries(state.statefulCallbacks)) {
    if (isCallbackEntry(key, value)) callbacks[key] = { args: {}, attributes: structuredClone(value) };
  }
  out["stateful_callbacks"] = callbacks;
  return out;
}

/**
 * The `prefkit_state.json` object: what an exact resume needs beyond transformers' `TrainerState` (the
 * trainer RNG state, `num_update_steps_per_epoch`, and the `statefulCallbacks` records transformers' layout
 * cannot hold: the trainer's own records and non-object callback states).
 */
export function serializePrefkitState(state: TrainerState): Record<string, unknown> {
  const out: Record<string, unknown> = { format: PREFKIT_STATE_FORMAT };
  for (const [field, key] of Object.entries(PREFKIT_FIELD_TO_KEY)) {
    out[key] = structuredClone((state as unknown as Record<string, unknown>)[field]);
  }
  const records: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(state.statefulCallbacks)) {
    if (!isCallbackEntry(key, value)) records[key] = structuredClone(value);
  }
  out["stateful_records"] = records;
  return out;
}

/**
 * Parse a `trainer_state.json` object (as written by {@link serializeTrainerState}, by transformers, or by
 * prefkit before `prefkit_state.json` existed, whose extra keys are still read) and, when given, the checkpoint's
 * `prefkit_state.json` object. Fields neither has take their defaults. A `stateful_callbacks` entry in
 * transformers' shape gives its `attributes` to the callback of that name; `TrainerControl` is not restored.
 * @throws CheckpointError naming the file and the field when a required key is malformed.
 */
export function parseTrainerState(
  json: unknown,
  file = "trainer_state.json",
  prefkit?: unknown,
  prefkitFile = "prefkit_state.json",
): TrainerState {
  if (!isPlainObject(json)) throw new CheckpointError("expected a JSON object", { file });
  const state = createTrainerState() as unknown as Record<string, unknown>;
  for (const [field, key] of [...Object.entries(FIELD_TO_KEY), ...Object.entries(PREFKIT_FIELD_TO_KEY)]) {
    if (key in json && json[key] !== undefined) state[field] = structuredClone(json[key]);
  }
  for (const key of ["global_step", "epoch"] as const) {
    if (typeof json[key] !== "number" || !Number.isFinite(json[key])) {
      throw new CheckpointError(`expected a number, got ${JSON.stringify(json[key])}`, { file, field: key });
    }
  }
  if (!Array.isArray(state["logHistory"])) {
    throw new CheckpointError("expected an array", { file, field: "log_history" });
  }
  const stateful: Record<string, unknown> = {};
  const saved = json["stateful_callbacks"];
  if (saved !== undefined && saved !== null && !isPlainObject(saved)) {
    throw new CheckpointError("expected an object", { file, field: "stateful_callbacks" });
  }
  for (const [key, value] of Object.entries(saved ?? {})) {
    if (key === "TrainerControl") continue;
    const hfShape = isPlainObject(value) && isPlainObject(value["attributes"]) && Object.keys(value).length <= 2;
    stateful[key] = structuredClone(hfShape ? (value as Record<string, unknown>)["attributes"] : value);
  }
  if (prefkit !== undefined) {
    if (!isPlainObject(prefkit) || prefkit["format"] !== PREFKIT_STATE_FORMAT) {
      throw new CheckpointError(`expected an object with "format": "${PREFKIT_STATE_FORMAT}"`, {
        file: prefkitFile,
        field: "format",
      });
    }
    for (const [field, key] of Object.entries(PREFKIT_FIELD_TO_KEY)) {
      if (key in prefkit && prefkit[key] !== undefined) state[field] = structuredClone(prefkit[key]);
    }
    const records = prefkit["stateful_records"] ?? {};
    if (!isPlainObject(records)) {
      throw new CheckpointError("expected an object", { file: prefkitFile, field: "stateful_records" });
    }
    Object.assign(stateful, structuredClone(records));
  }
  state["statefulCallbacks"] = stateful;
  const rng = state["rngState"] as RngState | null;
  if (rng !== null && (typeof rng !== "object" || !Array.isArray(rng.s))) {
    throw new CheckpointError("expected an RNG state object or null", {
      file: prefkit !== undefined ? prefkitFile : file,
      field: "rng_state",
    });
  }
  return state as unknown as TrainerState;
}
