/**
 * `GradientHook`: the seam between back-propagation and the optimizer in `Trainer`'s optimizer steps. AMP's loss scaler and `NanGuardCallback`'s `action: "skip"` use it.
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";

/** What a hook sees before the optimizer step. */
export interface GradientCheck {
  /** The optimizer step being computed (1-based: `state.globalStep + 1`). */
  step: number;
  /** Loss of the step (Σ share·loss over micro-batches, without any loss scale). */
  loss: number;
  /** Global L2 norm of the gradients after every `unscaleGradients`, before clipping (may be NaN/Infinity). */
  gradNorm: number;
  /** The unscaled, unclipped gradients (owned by the trainer: read them, do not dispose them). */
  grads: tf.NamedTensorMap;
}

/** What happened to a step, as every hook's {@link GradientHook.afterStep} is told. */
export interface GradientStepOutcome {
  /** The optimizer step (1-based). */
  step: number;
  /** True when the optimizer applied the gradients. */
  applied: boolean;
  /** Name of the hook that vetoed the step (when not applied). */
  skippedBy?: string;
  /** The veto's reason (when not applied). */
  reason?: string;
  /** Loss of the step (unscaled). */
  loss: number;
  /** Gradient norm (unscaled, before clipping). */
  gradNorm: number;
}

/**
 * A hook on the gradients of every optimizer step. The trainer calls, in this order:
 *
 * 1. `lossScale()` of every hook before back-propagation; the micro-batch loss is multiplied by the
 *    product S of the scales INSIDE the gradient tape, so every gradient comes out multiplied by S
 *    (torch's `scaler.scale(loss).backward()`). Reported losses stay unscaled.
 * 2. `unscaleGradients(grads)` in registration order, on the gradients accumulated over the step's
 *    micro-batches: a hook that scaled the loss divides its own factor back out (torch's
 *    `scaler.unscale_`). Ownership: the hook returns a new map and the trainer disposes every input tensor
 *    that the output does not reuse.
 * 3. The trainer measures the global gradient norm (one data sync) and calls `vetoStep(check)` in
 *    registration order; the first hook that returns a reason (a non-empty string) vetoes the step, and
 *    later hooks' `vetoStep` are not called.
 * 4. A vetoed step is skipped as torch's `GradScaler` + HF `Trainer` skip it: no `applyGradients` (so the
 *    optimizer's moments and step count do not move), no learning-rate scheduler step, but `globalStep`
 *    still advances, callbacks still fire, and the trainer counts it in `skipped_steps` (logged with the
 *    training metrics whenever a hook is installed) and in `Trainer.skippedSteps`.
 * 5. `afterStep(outcome)` of every hook, applied or not (AMP updates its scale here).
 *
 * With no hook installed the step is exactly the plain one (no extra ops, no extra syncs).
 *
 * Hooks reach a trainer two ways: in its `gradientHooks` part (the composition root fills it from the
 * `GRADIENT_HOOKS` token, where plugins add theirs through `PluginContext.addGradientHook`), or as the
 * `gradientHook` property of a callback (`NanGuardCallback` with `action: "skip"`). Hooks of the part run
 * first, then callbacks' hooks, each in order.
 */
export interface GradientHook {
  /** Name used in skip reasons and as the key of its checkpointed state (`gradientHook:<name>`). */
  readonly name: string;
  /** Factor the loss is multiplied by inside the tape for the coming step (default 1). A power of two keeps it exact. */
  lossScale?(): number;
  /** Undo this hook's loss scale (and anything else it wants to do to the gradients); see the ownership rule above. */
  unscaleGradients?(grads: tf.NamedTensorMap, step: number): tf.NamedTensorMap;
  /** Return a reason to skip the step, or `undefined`/`false` to let it through. */
  vetoStep?(check: GradientCheck): string | false | undefined;
  /** Told what happened to the step. */
  afterStep?(outcome: GradientStepOutcome): void;
  /** State to checkpoint (saved in `trainer_state.json` under `stateful_callbacks["gradientHook:<name>"]`). */
  getState?(): unknown;
  /** Restore what {@link GradientHook.getState} returned, when resuming. */
  loadState?(state: unknown): void;
}

/** A step the hooks vetoed, as the `Trainer` records it. */
export interface SkippedStep {
  /** The optimizer step (1-based). */
  step: number;
  /** Name of the vetoing hook. */
  hook: string;
  /** Its reason. */
  reason: string;
}
