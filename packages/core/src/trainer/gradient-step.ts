/**
 * One optimizer step of the generic trainer: forward/backward over the step's micro-batches (each loss
 * scaled by its share), in-place gradient accumulation, then the gradient hooks, clipping and the optimizer.
 * Offline methods run one per trainer step; an on-policy update (PPO) runs several.
 * @module
 */
import { tf } from "../engine/tf.js";
import { cpuFloat32Values } from "../engine/kernels/cpu-data.js";
import { activeNativeAddon } from "../engine/kernels/native-blas.js";
import { ConfigError } from "../errors/index.js";
import type { GradientHook, GradientStepOutcome, SkippedStep } from "../interfaces/gradient-hook.js";
import type { LossRewards } from "../interfaces/loss.js";
import type { StepOutput, TrainableModel, TrainingTask } from "../interfaces/task.js";
import { type ClippedGradients, clipByGlobalNorm } from "../optim/clip.js";

/** Numbers of one optimizer step. */
export interface StepResult {
  /** Loss of the step: Σ share·loss over micro-batches (= the loss of one big batch). */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** True when a {@link GradientHook} vetoed the optimizer step (absent when none did). */
  skipped?: boolean;
  /** Metrics, each the share-weighted mean over the micro-batches. */
  metrics: Record<string, number>;
  /** Each micro-batch's metric values, in order. */
  microMetrics: Array<Record<string, number>>;
  /** Tokens seen in the step (sum of `StepOutput.numTokens`). */
  numTokens: number;
  /** Metrics a training log reports as of its last step rather than averaged (see `RolloutUpdate.latest`). */
  latest?: readonly string[];
}

/** What the gradient step needs from the trainer. */
export interface GradientStepParts<TMicro> {
  /** The model whose trainable variables get gradients. */
  model: TrainableModel;
  /** The task that computes each micro-batch's loss. */
  task: TrainingTask<unknown, TMicro>;
  /** The optimizer. */
  optimizer: tf.Optimizer;
  /** Clip to this global norm (≤ 0: no clipping). */
  maxGradNorm: number;
}

function scalarValue(x: tf.Tensor | number): number {
  return typeof x === "number" ? x : x.dataSync()[0]!;
}

/**
 * TRL's `rewards/*` metrics from per-row rewards: means of each side, margins = mean(chosen) − mean(rejected)
 * (= mean(chosen − rejected) for pairs), accuracies = mean[chosen > rejected] for equal-length (paired)
 * rewards. A side with no rows (an unpaired batch of one kind) logs nothing for itself.
 */
export function rewardMetrics(rewards: LossRewards): Record<string, tf.Scalar> {
  const out: Record<string, tf.Scalar> = {};
  const { chosen, rejected } = rewards;
  if (chosen.size > 0) out["rewards/chosen"] = tf.mean(chosen) as tf.Scalar;
  if (rejected.size > 0) out["rewards/rejected"] = tf.mean(rejected) as tf.Scalar;
  if (chosen.size > 0 && rejected.size > 0) {
    out["rewards/margins"] = tf.sub(tf.mean(chosen), tf.mean(rejected)) as tf.Scalar;
    if (chosen.size === rejected.size) {
      out["rewards/accuracies"] = tf.mean(tf.step(tf.sub(chosen, rejected))) as tf.Scalar;
    }
  }
  return out;
}

/** A step output's metrics with the standard reward metrics added (the output's own names win). */
export function stepMetrics(out: StepOutput): Record<string, tf.Scalar | number> {
  return out.rewards === undefined ? (out.metrics ?? {}) : { ...rewardMetrics(out.rewards), ...(out.metrics ?? {}) };
}

/**
 * `prev += g` in `prev`'s own array (the same float32 sums as `tf.add`) when the native addon is active
 * on `cpu` and nothing else shares `prev`'s data: gradient accumulation then allocates nothing per
 * micro-batch (a fresh array costs ~4 ms per MB on these machines). False when it did not apply.
 */
function addInPlace(prev: tf.Tensor, g: tf.Tensor): boolean {
  if (activeNativeAddon() === undefined) return false;
  if (prev.size !== g.size || prev.shape.some((d, i) => d !== g.shape[i])) return false;
  const target = cpuFloat32Values(prev, true);
  const source = cpuFloat32Values(g);
  if (target === undefined || source === undefined || target === source) return false;
  for (let i = 0; i < target.length; i++) target[i] = target[i]! + source[i]!;
  return true;
}

/** Product of the hooks' `lossScale()` (1 without hooks). */
export function lossScaleOf(hooks: readonly GradientHook[]): number {
  let scale = 1;
  for (const h of hooks) if (h.lossScale) scale *= h.lossScale();
  return scale;
}

/** Gradients accumulated over a step's micro-batches, with the step's loss and metrics. */
export interface AccumulatedGradients {
  /** Σ share·∇loss by variable name (owned by the caller: dispose them). */
  grads: tf.NamedTensorMap;
  /** Σ share·loss (unscaled). */
  loss: number;
  /** Share-weighted metric means. */
  metrics: Record<string, number>;
  /** Each micro-batch's metrics. */
  microMetrics: Array<Record<string, number>>;
  /** Σ numTokens. */
  numTokens: number;
}

/**
 * Forward/backward every micro-batch (loss × share × `lossScale`) and add the gradients up, in place when
 * the trainer owns them. `between()` runs after every micro-batch but the last (`onSubstepEnd`).
 */
export async function accumulateGradients<TMicro>(
  parts: GradientStepParts<TMicro>,
  microBatches: readonly TMicro[],
  lossScale: number,
  between: () => Promise<void>,
): Promise<AccumulatedGradients> {
  const vars = parts.model.trainableVariables();
  if (vars.length === 0) throw new ConfigError("the model has no trainable variables", { field: "model" });
  const weights = microBatches.map((b) => parts.task.batchWeight?.(b) ?? 1);
  const total = weights.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new ConfigError(`batch weights must sum to > 0, got ${total}`, { field: "batchWeight" });
  const accum: tf.NamedTensorMap = {};
  const result: AccumulatedGradients = { grads: accum, loss: 0, metrics: {}, microMetrics: [], numTokens: 0 };
  const presentShares = new Map<string, number>();
  let allShares = 0;
  try {
    for (let i = 0; i < microBatches.length; i++) {
      const share = weights[i]! / total;
      const captured: Record<string, tf.Tensor | number> = {};
      let unscaledLoss: tf.Tensor | undefined;
      const { value, grads } = tf.tidy(() =>
        tf.variableGrads(() => {
          const out = parts.task.compute(microBatches[i]!, { training: true });
          for (const [k, m] of Object.entries(stepMetrics(out))) captured[k] = typeof m === "number" ? m : tf.keep(m);
          result.numTokens += out.numTokens ?? 0;
          const shared = tf.mul(out.loss, share) as tf.Scalar;
          if (lossScale === 1) return shared;
          unscaledLoss = tf.keep(shared);
          return tf.mul(shared, lossScale) as tf.Scalar;
        }, vars),
      );
      result.loss += (unscaledLoss ?? value).dataSync()[0]!;
      value.dispose();
      unscaledLoss?.dispose();
      const micro: Record<string, number> = {};
      for (const [k, m] of Object.entries(captured)) {
        micro[k] = scalarValue(m);
        result.metrics[k] = (result.metrics[k] ?? 0) + share * micro[k]!;
        presentShares.set(k, (presentShares.get(k) ?? 0) + share);
        if (typeof m !== "number") m.dispose();
      }
      allShares += share;
      result.microMetrics.push(micro);
      for (const [name, g] of Object.entries(grads)) {
        if (g == null) continue;
        const prev = accum[name];
        if (prev === undefined) accum[name] = g;
        else {
          if (!addInPlace(prev, g)) {
            accum[name] = tf.add(prev, g);
            prev.dispose();
          }
          g.dispose();
        }
      }
      if (i < microBatches.length - 1) await between();
    }
    // A metric only some micro-batches have (an unpaired batch of one kind) is their share-weighted mean.
    for (const [k, present] of presentShares) if (present !== allShares) result.metrics[k]! /= present;
    return result;
  } catch (e) {
    for (const g of Object.values(accum)) g.dispose();
    throw e;
  }
}

/** What {@link applyGradients} did. */
export interface AppliedGradients {
  /** Global gradient norm before clipping (after unscaling). */
  gradNorm: number;
  /** False when a hook vetoed the step. */
  applied: boolean;
}

/**
 * Apply accumulated gradients (`accum` is not disposed: the caller owns it). Without hooks: clip in place
 * and apply. With hooks (see {@link GradientHook} for the order): unscale, measure the norm, ask for vetoes,
 * clip and apply unless vetoed, tell every hook, and record a veto in `skipped`. Either way a step that
 * `mayApply(loss, gradNorm)` refuses (the trainer's finiteness guard) is not applied.
 * @param step the 1-based optimizer step being applied.
 */
export function applyGradients(
  parts: Pick<GradientStepParts<unknown>, "optimizer" | "maxGradNorm">,
  accum: tf.NamedTensorMap,
  loss: number,
  step: number,
  hooks: readonly GradientHook[],
  skipped: SkippedStep[],
  mayApply: (loss: number, gradNorm: number) => boolean = () => true,
): AppliedGradients {
  if (hooks.length === 0) {
    let applied = false;
    const gradNorm = tf.tidy(() => {
      // The accumulated gradients are the trainer's own: scale them in place when clipping.
      const { grads, norm } = clipByGlobalNorm(accum, parts.maxGradNorm, { inPlace: true });
      const value = norm.dataSync()[0]!;
      applied = mayApply(loss, value);
      if (applied) parts.optimizer.applyGradients(grads);
      return value;
    });
    return { gradNorm, applied };
  }
  const made = new Set<tf.Tensor>();
  try {
    let grads = accum;
    for (const h of hooks) {
      if (!h.unscaleGradients) continue;
      grads = h.unscaleGradients(grads, step);
      for (const g of Object.values(grads)) made.add(g);
    }
    const clipped = tf.tidy(
      () => clipByGlobalNorm(grads, parts.maxGradNorm) as unknown as tf.TensorContainer,
    ) as unknown as ClippedGradients;
    made.add(clipped.norm);
    for (const g of Object.values(clipped.grads)) made.add(g);
    const gradNorm = clipped.norm.dataSync()[0]!;
    let veto: { hook: string; reason: string } | undefined;
    for (const h of hooks) {
      const reason = h.vetoStep?.({ step, loss, gradNorm, grads });
      if (reason) {
        veto = { hook: h.name, reason };
        break;
      }
    }
    // A step no hook vetoed still has to pass `mayApply` (a vetoed one is a skip, not a divergence).
    const applied = !veto && mayApply(loss, gradNorm);
    if (applied) tf.tidy(() => parts.optimizer.applyGradients(clipped.grads));
    else if (veto) skipped.push({ step, hook: veto.hook, reason: veto.reason });
    const stop =
      veto ?? (applied ? undefined : { hook: "FiniteGuard", reason: "the loss or gradient norm is not finite" });
    const outcome: GradientStepOutcome = {
      step,
      applied,
      loss,
      gradNorm,
      ...(stop ? { skippedBy: stop.hook, reason: stop.reason } : {}),
    };
    for (const h of hooks) h.afterStep?.(outcome);
    return { gradNorm, applied };
  } finally {
    // dispose() is idempotent, so tensors a hook passed through from `accum` are safe to list here
    const own = new Set(Object.values(accum));
    for (const t of made) if (!own.has(t)) t.dispose();
  }
}
