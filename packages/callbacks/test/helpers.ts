// Drive callbacks through core's CallbackHandler without a trainer.
import {
  type Callback,
  CallbackHandler,
  createTrainerControl,
  createTrainerState,
  DEFAULT_TRAINING_ARGS,
  type TrainerState,
  type TrainingArgs,
} from "@prefkit/core";

export function harness(callbacks: Callback[], args: Partial<TrainingArgs> = {}) {
  const handler = new CallbackHandler(callbacks);
  const fullArgs = { ...DEFAULT_TRAINING_ARGS, ...args } as TrainingArgs;
  const state: TrainerState = { ...createTrainerState(), maxSteps: 10 };
  const control = createTrainerControl();
  return {
    handler,
    args: fullArgs,
    state,
    control,
    begin: () => handler.emit("onTrainBegin", fullArgs, state, control),
    step: async (logs?: Record<string, number>) => {
      await handler.emit("onStepBegin", fullArgs, state, control);
      state.globalStep += 1;
      await handler.emit("onStepEnd", fullArgs, state, control);
      if (logs) await handler.emit("onLog", fullArgs, state, control, { logs });
    },
    log: (logs: Record<string, number>) => handler.emit("onLog", fullArgs, state, control, { logs }),
    evaluate: (metrics: Record<string, number>) => handler.emit("onEvaluate", fullArgs, state, control, { metrics }),
    end: () => handler.emit("onTrainEnd", fullArgs, state, control),
  };
}

/** True when `bytes` start with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  return bytes.length > 8 && sig.every((b, i) => bytes[i] === b);
}
