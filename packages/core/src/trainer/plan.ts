/**
 * How many optimizer steps and epochs a run does, and the micro-batch groups of one epoch after a resume.
 * @module
 */
import type { TrainerState } from "../interfaces/callback.js";
import type { BatchSource, TrainingArgs } from "../interfaces/trainer.js";
import { getWarmupSteps, LRScheduler } from "../optim/schedules.js";

/** The length of a run. */
export interface RunPlan {
  /** Optimizer steps per epoch: ⌈micro-batches / gradientAccumulationSteps⌉ (a last partial group is a step). */
  perEpoch: number;
  /** Total optimizer steps. */
  maxSteps: number;
  /** Epochs started. */
  numEpochs: number;
}

/**
 * The run's length as transformers' Trainer derives it: `maxSteps` when > 0, else ⌈numTrainEpochs · perEpoch⌉,
 * unless the method counts steps its own way (`totalSteps`).
 */
export function planRun(
  args: TrainingArgs,
  numBatches: number,
  totalSteps?: (perEpoch: number) => number | undefined,
): RunPlan {
  const perEpoch = Math.max(1, Math.ceil(numBatches / args.gradientAccumulationSteps));
  const maxSteps =
    totalSteps?.(perEpoch) ?? (args.maxSteps > 0 ? args.maxSteps : Math.ceil(args.numTrainEpochs * perEpoch));
  return { perEpoch, maxSteps, numEpochs: Math.ceil(maxSteps / perEpoch) };
}

/** The schedule `args.lrSchedulerType` names, peaking at `peak`, over `maxSteps`. */
export function defaultSchedule(args: TrainingArgs, peak: number, maxSteps: number): LRScheduler {
  return new LRScheduler(
    args.lrSchedulerType,
    peak,
    getWarmupSteps(maxSteps, args.warmupSteps, args.warmupRatio),
    maxSteps,
  );
}

/** Record the plan and the loop settings in the state (as transformers' `TrainerState` carries them). */
export function recordPlan(state: TrainerState, args: TrainingArgs, plan: RunPlan): void {
  Object.assign(state, {
    maxSteps: plan.maxSteps,
    numUpdateStepsPerEpoch: plan.perEpoch,
    numTrainEpochs: plan.numEpochs,
    loggingSteps: args.loggingSteps,
    evalSteps: args.evalSteps ?? args.loggingSteps,
    saveSteps: args.saveSteps,
    trainBatchSize: args.perDeviceTrainBatchSize,
  });
}

/**
 * The micro-batch groups (one optimizer step each) of `epoch`, skipping the first `skipGroups` groups (a resumed
 * run's steps already done); the last group may be partial. The same epoch always gives the same groups.
 */
export async function* epochGroups<TBatch>(
  data: BatchSource<TBatch>,
  epoch: number,
  groupSize: number,
  skipGroups: number,
): AsyncGenerator<TBatch[]> {
  let toSkip = skipGroups * groupSize;
  let group: TBatch[] = [];
  for await (const batch of data.batches(epoch)) {
    if (toSkip > 0) {
      toSkip--;
      continue;
    }
    group.push(batch);
    if (group.length === groupSize) {
      yield group;
      group = [];
    }
  }
  if (group.length > 0) yield group;
}
