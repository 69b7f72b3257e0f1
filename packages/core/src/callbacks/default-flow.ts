import type { Callback, TrainerControl, TrainerState } from "../interfaces/callback.js";
import type { TrainingArgs } from "../interfaces/trainer.js";

/**
 * transformers' `DefaultFlowCallback`: turns `loggingSteps`, `evalSteps`, `saveSteps`,
 * `maxSteps` and the epoch strategies into control flags. The trainer installs it before
 * any user callback, so user callbacks see (and may override) its decisions.
 */
export class DefaultFlowCallback implements Callback {
  /** Callback name. */
  readonly name = "DefaultFlowCallback";

  /** Sets `shouldLog`/`shouldEvaluate`/`shouldSave`/`shouldTrainingStop` for the finished step. */
  onStepEnd(args: Readonly<TrainingArgs>, state: Readonly<TrainerState>, control: TrainerControl): void {
    const step = state.globalStep;
    if (step === 1 && args.loggingFirstStep) control.shouldLog = true;
    if (args.loggingStrategy === "steps" && state.loggingSteps > 0 && step % state.loggingSteps === 0) {
      control.shouldLog = true;
    }
    if (args.evalStrategy === "steps" && state.evalSteps > 0 && step % state.evalSteps === 0) {
      control.shouldEvaluate = true;
    }
    if (args.saveStrategy === "steps" && state.saveSteps > 0 && step % state.saveSteps === 0) {
      control.shouldSave = true;
    }
    if (step >= state.maxSteps) {
      control.shouldTrainingStop = true;
      if (args.saveStrategy !== "no") control.shouldSave = true;
    }
  }

  /** Applies the `"epoch"` strategies. */
  onEpochEnd(args: Readonly<TrainingArgs>, _state: Readonly<TrainerState>, control: TrainerControl): void {
    if (args.loggingStrategy === "epoch") control.shouldLog = true;
    if (args.evalStrategy === "epoch") control.shouldEvaluate = true;
    if (args.saveStrategy === "epoch") control.shouldSave = true;
  }
}
