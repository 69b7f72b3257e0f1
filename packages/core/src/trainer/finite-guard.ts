/**
 * The trainer's per-step health check: a non-finite loss or gradient norm is never applied, non-finite
 * weights are never saved, and two quieter failures (gradients that vanished, a loss that blew up) are
 * reported once.
 * @module
 */
import { latestCheckpoint } from "../checkpoint/atomic.js";
import { tf } from "../engine/tf.js";
import { DivergenceError } from "../errors/index.js";
import type { TrainableModel } from "../interfaces/task.js";

/** What stopped a run: the first non-finite value the guard saw. */
export interface Divergence {
  /** The optimizer step (1-based) whose value was not finite. */
  step: number;
  /** `loss`, `grad_norm`, or `weights` (a weight became non-finite after an update that looked finite). */
  metric: "loss" | "grad_norm" | "weights";
  /** The value (NaN for weights). */
  value: number;
  /** One line naming the step and the values, e.g. `step 2: loss is NaN (grad_norm=NaN)`. */
  message: string;
}

/** Steps in a row with a gradient norm of exactly 0 (while the loss moves) before {@link FiniteGuard} warns. */
export const ZERO_GRAD_STEPS = 3;
/** {@link FiniteGuard} warns when |loss| exceeds this many times max(|first loss|, 0.1). */
export const LOSS_EXPLOSION_FACTOR = 10;

/**
 * Per-step checks of the `Trainer`. Every optimizer step asks {@link FiniteGuard.allows} before its
 * update: a non-finite loss or gradient norm is refused (the update is not applied) and recorded as the
 * run's {@link Divergence}, after which every later step is refused too. A {@link GradientHook} that vetoes
 * the step first (e.g. `NanGuardCallback` with `action: "skip"`) keeps the run going instead.
 *
 * {@link FiniteGuard.observe} watches the applied steps and warns once each when the gradient norm is exactly
 * 0 for {@link ZERO_GRAD_STEPS} steps while the loss changes (the gradients vanished: saturated outputs, often
 * a learning rate far too high), and when the loss grows past {@link LOSS_EXPLOSION_FACTOR} times its first
 * value.
 */
export class FiniteGuard {
  /** The divergence that stopped the run, if any. */
  divergence: Divergence | undefined;
  private firstLoss: number | undefined;
  private zeroGradRun = 0;
  private zeroGradFirstLoss = 0;
  private warnedZeroGrad = false;
  private warnedExplosion = false;

  /** @param warn where the two warnings go. */
  constructor(private readonly warn: (message: string) => void) {}

  /** Forget everything (a new run). */
  reset(): void {
    this.divergence = undefined;
    this.firstLoss = undefined;
    this.zeroGradRun = 0;
    this.warnedZeroGrad = false;
    this.warnedExplosion = false;
  }

  /**
   * True when step `step` may be applied: no earlier divergence, and `loss` and `gradNorm` are finite.
   * Otherwise records the divergence (the first one only) and returns false.
   */
  allows(step: number, loss: number, gradNorm: number): boolean {
    if (this.divergence) return false;
    if (Number.isFinite(loss) && Number.isFinite(gradNorm)) return true;
    const metric = Number.isFinite(loss) ? "grad_norm" : "loss";
    const value = metric === "loss" ? loss : gradNorm;
    const other = metric === "loss" ? `grad_norm=${gradNorm}` : `loss=${loss}`;
    this.divergence = { step, metric, value, message: `step ${step}: ${metric} is ${value} (${other})` };
    return false;
  }

  /**
   * Check that every tensor in `vars` (name, tensor: weights, optimizer slots) is finite (one reduction per variable, one data sync in all) before
   * they are saved. Records a `weights` divergence at `step` and returns false when one is not.
   */
  async weightsAreFinite(step: number, vars: ReadonlyArray<readonly [string, tf.Tensor]>): Promise<boolean> {
    if (this.divergence) return false;
    const bad = await firstNonFinite(vars);
    if (bad === undefined) return true;
    this.divergence = {
      step,
      metric: "weights",
      value: Number.NaN,
      message: `step ${step}: the weights are no longer finite (${bad} has NaN or Infinity) after an update`,
    };
    return false;
  }

  /** Watch an applied step's loss and gradient norm for the two warnings. */
  observe(step: number, loss: number, gradNorm: number): void {
    if (!Number.isFinite(loss)) return;
    this.firstLoss ??= loss;
    if (gradNorm === 0) {
      if (this.zeroGradRun === 0) this.zeroGradFirstLoss = loss;
      this.zeroGradRun++;
      if (!this.warnedZeroGrad && this.zeroGradRun >= ZERO_GRAD_STEPS && loss !== this.zeroGradFirstLoss) {
        this.warnedZeroGrad = true;
        this.warn(
          `step ${step}: grad_norm has been exactly 0 for ${this.zeroGradRun} steps while the loss moved ` +
            `(${this.zeroGradFirstLoss} → ${loss}): the gradients vanished (saturated outputs?); the learning rate may be far too high`,
        );
      }
    } else {
      this.zeroGradRun = 0;
    }
    const limit = LOSS_EXPLOSION_FACTOR * Math.max(Math.abs(this.firstLoss), 0.1);
    if (!this.warnedExplosion && Math.abs(loss) > limit) {
      this.warnedExplosion = true;
      this.warn(
        `step ${step}: loss ${loss} is more than ${LOSS_EXPLOSION_FACTOR}× its first value ${this.firstLoss}: ` +
          "training is diverging; lower the learning rate",
      );
    }
  }
}

/**
 * Name of the first variable holding NaN or ±Infinity, or undefined. Σ x·0 is 0 when every x is finite and
 * NaN otherwise; each product is freed before the next one is made, so at most one variable's copy exists.
 */
async function firstNonFinite(vars: ReadonlyArray<readonly [string, tf.Tensor]>): Promise<string | undefined> {
  if (vars.length === 0) return undefined;
  const scalars = vars.map(([, v]) => tf.tidy(() => tf.sum(tf.mul(v, 0))));
  const sums = tf.stack(scalars);
  for (const s of scalars) s.dispose();
  try {
    const values = await sums.data();
    const i = values.findIndex((x) => !Number.isFinite(x));
    return i < 0 ? undefined : vars[i]![0];
  } finally {
    sums.dispose();
  }
}

/**
 * True when every trainable weight of `model` and every float32 optimizer slot is finite at `step`; otherwise
 * records a `weights` divergence in `guard` and returns false (nothing may be saved then).
 */
export async function trainableStateIsFinite(
  guard: FiniteGuard,
  step: number,
  model: TrainableModel,
  optimizer: tf.Optimizer,
): Promise<boolean> {
  if (guard.divergence) return false;
  const trainable = new Set(model.trainableVariables());
  const named: Array<readonly [string, tf.Tensor]> = [...model.namedParameters()].filter(([, v]) => trainable.has(v));
  const slots = await optimizer.getWeights();
  try {
    for (const { name, tensor } of slots) if (tensor.dtype === "float32") named.push([name, tensor]);
    return await guard.weightsAreFinite(step, named);
  } finally {
    for (const { tensor } of slots) if (!(tensor instanceof tf.Variable)) tensor.dispose();
  }
}

/** The error a diverged run ends with: the step, the value, and the newest (good) checkpoint in `outputDir`. */
export async function divergenceError(d: Divergence, outputDir: string): Promise<DivergenceError> {
  const newest = await latestCheckpoint(outputDir);
  const notApplied = d.metric === "weights" ? "" : "; that update was not applied";
  return new DivergenceError(
    `training diverged at ${d.message}${notApplied}; nothing was saved after it ` +
      `(${newest === undefined ? "no checkpoint was saved" : `newest checkpoint: ${newest}`})`,
    d.step,
    d.metric,
    d.value,
  );
}
