/**
 * The state a checkpoint carries besides the model, optimizer and schedule: callbacks', gradient hooks' and
 * the task's own state, and the record of vetoed steps, kept in `state.statefulCallbacks` (callbacks in
 * transformers' `trainer_state.json` shape, the rest in `prefkit_state.json`).
 * @module
 */
import type { Callback, TrainerState } from "../interfaces/callback.js";
import type { GradientHook, SkippedStep } from "../interfaces/gradient-hook.js";
import type { TrainingTask } from "../interfaces/task.js";

/** `state.statefulCallbacks` key of the skipped-step record (saved when gradient hooks are installed). */
export const SKIPPED_STEPS_KEY = "Trainer.skippedSteps";

/** `state.statefulCallbacks` key of a task's checkpointed state. */
export function taskStateKey(task: { readonly name: string }): string {
  return `task:${task.name}`;
}

/** Whose state a checkpoint records. */
export interface StateOwners {
  /** Callbacks with a `name` and `getState`/`loadState`. */
  callbacks: readonly Callback<any>[];
  /** Gradient hooks with `getState`/`loadState`. */
  hooks: readonly GradientHook[];
  /** The task, when it has state. */
  task: TrainingTask<unknown, unknown>;
}

/** Write every owner's state, and the skipped steps when hooks are installed, into `state.statefulCallbacks`. */
export function recordStates(state: TrainerState, owners: StateOwners, skippedSteps: readonly SkippedStep[]): void {
  const records = state.statefulCallbacks;
  for (const cb of owners.callbacks) if (cb.name && cb.getState) records[cb.name] = structuredClone(cb.getState());
  for (const hook of owners.hooks) {
    if (hook.getState) records[`gradientHook:${hook.name}`] = structuredClone(hook.getState());
  }
  if (owners.hooks.length > 0) records[SKIPPED_STEPS_KEY] = structuredClone(skippedSteps);
  if (owners.task.getState) records[taskStateKey(owners.task)] = structuredClone(owners.task.getState());
}

/** Give every owner its recorded state back (a resume); returns the recorded skipped steps. */
export function restoreStates(state: TrainerState, owners: StateOwners): SkippedStep[] {
  const saved = state.statefulCallbacks;
  for (const cb of owners.callbacks) if (cb.name && cb.loadState && cb.name in saved) cb.loadState(saved[cb.name]);
  for (const hook of owners.hooks) {
    const key = `gradientHook:${hook.name}`;
    if (hook.loadState && key in saved) hook.loadState(saved[key]);
  }
  const taskKey = taskStateKey(owners.task);
  if (owners.task.loadState && taskKey in saved) owners.task.loadState(saved[taskKey]);
  return structuredClone((saved[SKIPPED_STEPS_KEY] as SkippedStep[] | undefined) ?? []);
}
