import { ConfigError } from "../errors/index.js";
import type { LrSchedulerType } from "../interfaces/trainer.js";

/** Every supported {@link LrSchedulerType}. */
export const SCHEDULER_TYPES: readonly LrSchedulerType[] = ["constant", "constant_with_warmup", "linear", "cosine"];

/**
 * The multiplier of the base learning rate after `step` optimizer steps, exactly as
 * transformers' `get_*_schedule_with_warmup` lambdas:
 * - warm-up (all but `"constant"`): `step / max(1, warmup)` while `step < warmup`;
 * - `constant` / `constant_with_warmup`: 1;
 * - `linear`: `max(0, (total − step) / max(1, total − warmup))`;
 * - `cosine`: `max(0, ½(1 + cos(π · 2 · 0.5 · progress)))`, progress = `(step − warmup) / max(1, total − warmup)`.
 *
 * As in transformers, `"constant"` ignores warm-up; use `"constant_with_warmup"` for it.
 */
export function lrLambda(type: LrSchedulerType, step: number, warmupSteps: number, totalSteps: number): number {
  if (!SCHEDULER_TYPES.includes(type)) {
    throw new ConfigError(
      `unknown schedule "${type as string}"; known: ${SCHEDULER_TYPES.map((t) => `"${t}"`).join(", ")}`,
      { field: "lrSchedulerType" },
    );
  }
  if (type === "constant") return 1;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  switch (type) {
    case "constant_with_warmup":
      return 1;
    case "linear":
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
    default: {
      const numCycles = 0.5;
      const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
    }
  }
}

/** transformers' `get_warmup_steps`: `warmupSteps` if > 0, else ⌈total · warmupRatio⌉. */
export function getWarmupSteps(totalSteps: number, warmupSteps: number, warmupRatio: number): number {
  return warmupSteps > 0 ? warmupSteps : Math.ceil(totalSteps * warmupRatio);
}

/** Serialisable state of an {@link LRScheduler} (`scheduler.json` in a checkpoint). */
export interface LRSchedulerState {
  /** Schedule type. */
  type: LrSchedulerType;
  /** Base (peak) learning rate. */
  baseLr: number;
  /** Warm-up steps. */
  warmupSteps: number;
  /** Total steps. */
  totalSteps: number;
  /** Steps taken (torch's `last_epoch`). */
  lastStep: number;
}

/**
 * A learning-rate schedule as torch's `LambdaLR`: {@link LRScheduler.lr} is the rate for the
 * next optimizer step; call {@link LRScheduler.step} after each optimizer step.
 */
export class LRScheduler {
  private lastStep = 0;

  /** Build a schedule; see {@link lrLambda} for the formulas. */
  constructor(
    readonly type: LrSchedulerType,
    readonly baseLr: number,
    readonly warmupSteps: number,
    readonly totalSteps: number,
  ) {
    lrLambda(type, 0, warmupSteps, totalSteps); // validates the type
  }

  /** Learning rate for the next step (torch's `get_last_lr()[0]`). */
  get lr(): number {
    return this.baseLr * lrLambda(this.type, this.lastStep, this.warmupSteps, this.totalSteps);
  }

  /** Steps taken so far. */
  get stepCount(): number {
    return this.lastStep;
  }

  /** Advance one optimizer step. */
  step(): void {
    this.lastStep += 1;
  }

  /** State for a checkpoint. */
  state(): LRSchedulerState {
    return {
      type: this.type,
      baseLr: this.baseLr,
      warmupSteps: this.warmupSteps,
      totalSteps: this.totalSteps,
      lastStep: this.lastStep,
    };
  }

  /** Restore the step count from {@link LRScheduler.state} (the shape of the schedule must match). */
  loadState(state: LRSchedulerState, file = "scheduler.json"): void {
    for (const key of ["type", "baseLr", "warmupSteps", "totalSteps"] as const) {
      if (state[key] !== this[key]) {
        throw new ConfigError(`checkpoint has ${key} ${state[key]} but this run has ${this[key]}`, {
          file,
          field: key,
        });
      }
    }
    this.lastStep = state.lastStep;
  }
}

/** Builds the run's schedule once the number of training steps is known (the `SCHEDULER` token). */
export type SchedulerFactory = (totalSteps: number) => LRScheduler;
