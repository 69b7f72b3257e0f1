/**
 * A run's checkpoints as the trainer writes and reads them: `outputDir/checkpoint-<step>` with the model,
 * optimizer, schedule, RNG and state (callbacks', hooks' and the task's own state included), then
 * `saveTotalLimit`'s rotation.
 * @module
 */
import { join } from "node:path";
import { CHECKPOINT_PREFIX, rotateCheckpoints } from "../checkpoint/atomic.js";
import { loadTrainingCheckpoint, saveTrainingCheckpoint } from "../checkpoint/training-checkpoint.js";
import { CheckpointError } from "../errors/index.js";
import type { TrainerControl, TrainerState } from "../interfaces/callback.js";
import type { SkippedStep } from "../interfaces/gradient-hook.js";
import type { TrainableModel } from "../interfaces/task.js";
import type { TrainingArgs } from "../interfaces/trainer.js";
import type { LRScheduler } from "../optim/schedules.js";
import type { Rng } from "../rng/index.js";
import type { TunableOptimizer } from "./parts.js";
import { recordStates, restoreStates, type StateOwners } from "./state-records.js";

/** What a checkpoint saves and restores. */
export interface RunCheckpointParts {
  model: TrainableModel;
  optimizer: TunableOptimizer;
  scheduler: LRScheduler | undefined;
  rng: Rng;
  args: TrainingArgs;
  control: TrainerControl;
  owners: StateOwners;
}

/** Write `checkpoint-<globalStep>` atomically and apply `saveTotalLimit`; returns the directory. */
export async function writeRunCheckpoint(
  p: RunCheckpointParts,
  state: TrainerState,
  skippedSteps: readonly SkippedStep[],
): Promise<string> {
  const dir = join(p.args.outputDir, `${CHECKPOINT_PREFIX}${state.globalStep}`);
  state.rngState = p.rng.getState();
  recordStates(state, p.owners, skippedSteps);
  if (state.bestGlobalStep === state.globalStep) state.bestModelCheckpoint = dir;
  await saveTrainingCheckpoint(dir, { ...p, state });
  if (p.args.saveTotalLimit !== undefined) {
    await rotateCheckpoints(p.args.outputDir, p.args.saveTotalLimit, state.bestModelCheckpoint);
  }
  return dir;
}

/** Restore model, optimizer, schedule, RNG and the owners' state from `dir`; returns the state and skipped steps. */
export async function readRunCheckpoint(
  dir: string | undefined,
  p: RunCheckpointParts,
): Promise<{ state: TrainerState; skippedSteps: SkippedStep[] }> {
  if (!dir) throw new CheckpointError("resumeFromCheckpoint: no checkpoint found", { file: p.args.outputDir });
  const state = await loadTrainingCheckpoint(dir, p);
  return { state, skippedSteps: restoreStates(state, p.owners) };
}
