import { ConfigError, tf } from "@prefkit/core";
import { checkNumber, checkOneOf } from "../common/checks.js";
import { asFloatTensor, stopGradient, type TensorInput } from "../dpo/tensor-input.js";
import { klPenalty } from "../ppo/kl.js";

/** GRPO's loss aggregations (`GRPOConfig.loss_type`). */
export const GRPO_LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"] as const;

/**
 * How per-token losses become the batch loss: `"grpo"` mean over sequences of each sequence's token mean;
 * `"bnpo"` token sum over this batch's valid-token count; `"dr_grpo"` token sum over B·`maxCompletionLength`;
 * `"dapo"` (TRL's default) token sum over the valid tokens of the whole accumulated batch.
 */
export type GRPOLossType = (typeof GRPO_LOSS_TYPES)[number];

/** The clipping bounds of the PPO-style surrogate. */
export interface ClipRange {
  /** Lower bound ε: ratios below 1 − ε are clipped (default 0.2). */
  epsilon?: number;
  /** Upper bound ε_high: ratios above 1 + ε_high are clipped (default: `epsilon`; DAPO uses 0.28). */
  epsilonHigh?: number | null;
}

/** The loss fields of `GRPOConfig`, all optional, with TRL's defaults. */
export interface GRPOLossOptions extends ClipRange {
  /** KL coefficient β of the per-token k3 KL to the reference (default 0: no reference needed). */
  beta?: number;
  /** Two-sided clipping (INTELLECT-2): the unclipped ratio is capped at `delta` (default `null`: off). */
  delta?: number | null;
  /** Aggregation (default `"dapo"`). */
  lossType?: GRPOLossType;
  /** The generation budget in tokens, the constant of `"dr_grpo"` (default 256). */
  maxCompletionLength?: number;
  /**
   * `"dapo"` only: the number of valid completion tokens in the whole accumulated batch (all micro-batches of
   * one optimizer step), TRL's `num_items_in_batch`. Default: this batch's own count (no accumulation).
   */
  numItemsInBatch?: number;
  /** Micro-batches per optimizer step; `"grpo"`, `"bnpo"` and `"dr_grpo"` divide by it, as TRL (default 1). */
  gradientAccumulationSteps?: number;
}

/** Shares of valid tokens whose ratio was clipped (TRL's `clip_ratio/*` metrics), new scalars. */
export interface ClipRatios {
  /** r < 1 − ε where A < 0 (`clip_ratio/low_mean`). */
  lowMean: tf.Scalar;
  /** r > 1 + ε_high where A > 0 (`clip_ratio/high_mean`). */
  highMean: tf.Scalar;
  /** Either of the two (`clip_ratio/region_mean`). */
  regionMean: tf.Scalar;
}

/** What {@link grpoLoss} returns: new tensors, owned by the caller. */
export interface GRPOLossResult {
  /** The batch loss, aggregated per `lossType`; differentiable with respect to `logps`. */
  loss: tf.Scalar;
  /** −min(r·A, clip(r)·A) + β·k3 per token, [B, T], before masking and aggregation. */
  perTokenLoss: tf.Tensor2D;
  /** Mean k3 KL over valid tokens (the `kl` metric); present when reference log-probs were given. */
  kl?: tf.Scalar;
  /** The clip shares over valid tokens. */
  clipRatio: ClipRatios;
}

/** The PPO-style clipped surrogate and its clip indicators, shared by GRPO (per token) and RLOO (per sequence). */
export interface ClippedSurrogate {
  /** −min(r·A, clip(r, 1 − ε, 1 + ε_high)·A), the shape of `logRatio`. */
  loss: tf.Tensor;
  /** 1 where r < 1 − ε and A < 0, else 0. */
  lowClipped: tf.Tensor;
  /** 1 where r > 1 + ε_high and A > 0, else 0. */
  highClipped: tf.Tensor;
}

/** Resolves and checks ε and ε_high (TRL: `epsilon_high` defaults to `epsilon`). */
export function clipBounds(range: ClipRange): { low: number; high: number } {
  const low = range.epsilon ?? 0.2;
  checkNumber("epsilon", low, (v) => v >= 0, "a number >= 0");
  const high = range.epsilonHigh ?? low;
  checkNumber("epsilonHigh", high, (v) => v >= 0, "a number >= 0");
  return { low, high };
}

/**
 * The clipped surrogate of TRL's GRPO and RLOO `_compute_loss`: r = exp(logRatio), −min(r·A, clip(r)·A),
 * plus the clip indicators of their `clip_ratio` metrics. With `delta`, r is capped at `delta` AFTER the
 * clipped ratio is taken from it and BEFORE the indicators, exactly as TRL reassigns `coef_1`.
 * Must run inside a `tf.tidy` (it returns intermediates of the caller's scope).
 */
export function clippedSurrogate(
  logRatio: tf.Tensor,
  advantages: tf.Tensor,
  bounds: { low: number; high: number },
  delta: number | null = null,
): ClippedSurrogate {
  let ratio = tf.exp(logRatio);
  const clipped = tf.clipByValue(ratio, 1 - bounds.low, 1 + bounds.high);
  if (delta !== null) ratio = tf.minimum(ratio, delta);
  const loss = tf.neg(tf.minimum(tf.mul(ratio, advantages), tf.mul(clipped, advantages)));
  // step(x) is 1 for x > 0 only, so these are the strict comparisons of TRL.
  const lowClipped = tf.mul(tf.step(tf.sub(1 - bounds.low, ratio)), tf.step(tf.neg(advantages)));
  const highClipped = tf.mul(tf.step(tf.sub(ratio, 1 + bounds.high)), tf.step(advantages));
  return { loss, lowClipped, highClipped };
}

/** Σ(x·mask)/max(Σmask, 1): TRL's masked token mean with its `clamp(min=1.0)`. */
function maskedTokenMean(x: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.div(tf.sum(tf.mul(x, mask)), tf.maximum(tf.sum(mask), 1)) as tf.Scalar;
}

function validateGRPOLossOptions(options: GRPOLossOptions): void {
  if (options.beta !== undefined) checkNumber("beta", options.beta, (v) => v >= 0, "a number >= 0");
  if (options.lossType !== undefined) checkOneOf("lossType", options.lossType, GRPO_LOSS_TYPES);
  if (options.delta !== undefined && options.delta !== null) {
    checkNumber("delta", options.delta, (v) => v > 0, "null or a number > 0");
  }
  if (options.maxCompletionLength !== undefined) {
    checkNumber(
      "maxCompletionLength",
      options.maxCompletionLength,
      (v) => Number.isInteger(v) && v >= 1,
      "an integer >= 1",
    );
  }
  if (options.numItemsInBatch !== undefined) {
    checkNumber("numItemsInBatch", options.numItemsInBatch, (v) => v > 0, "a number > 0");
  }
  if (options.gradientAccumulationSteps !== undefined) {
    const steps = options.gradientAccumulationSteps;
    checkNumber("gradientAccumulationSteps", steps, (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  }
}

/**
 * GRPO's per-token clipped objective with a k3 KL penalty and TRL's four aggregations, mirroring
 * `GRPOTrainer._compute_loss` (token-level importance sampling).
 *
 * Per token, with r = exp(log πθ − log π_old): −min(r·A, clip(r, 1 − ε, 1 + ε_high)·A), plus, when β ≠ 0,
 * β·(e^{ref − logπ} − (ref − logπ) − 1), whose gradient flows through log πθ as in TRL. Then, with the mask:
 * - `"grpo"`: mean over sequences of Σ_t/max(|y|, 1) (a fully masked row, e.g. a truncated completion under
 *   `mask_truncated_completions`, still counts in the mean as 0, as TRL);
 * - `"bnpo"`: Σ/max(Σmask, 1); `"dr_grpo"`: Σ/(B·`maxCompletionLength`);
 * - `"dapo"`: Σ/`numItemsInBatch`.
 * The first three are divided by `gradientAccumulationSteps`; `"dapo"` is not (its normaliser already
 * counts the whole accumulated batch).
 *
 * `oldLogps` null means each rollout is used once (TRL's `num_iterations` 1): then log π_old is log πθ
 * detached, so r = 1 with the gradient of r·A. `refLogps` may be null when β is 0.
 *
 * @param logps per-token log πθ of the completion tokens, [B, T]
 * @param oldLogps per-token log-probs at sampling time, [B, T], or null
 * @param refLogps per-token reference log-probs, [B, T], or null (required when β ≠ 0)
 * @param advantages one per completion [B] (or per token [B, T])
 * @param mask 1 for valid completion tokens, [B, T]
 * @param options β, clipping, aggregation
 * @returns new tensors owned by the caller; the inputs are not disposed
 * @throws ConfigError for invalid options, or β ≠ 0 without reference log-probs
 */
export function grpoLoss(
  logps: TensorInput,
  oldLogps: TensorInput | null,
  refLogps: TensorInput | null,
  advantages: TensorInput,
  mask: TensorInput,
  options: GRPOLossOptions = {},
): GRPOLossResult {
  validateGRPOLossOptions(options);
  const bounds = clipBounds(options);
  const beta = options.beta ?? 0;
  const lossType = options.lossType ?? "dapo";
  const accumulation = options.gradientAccumulationSteps ?? 1;
  if (beta !== 0 && refLogps === null) {
    throw new ConfigError("beta != 0 needs the reference log-probs", { field: "refLogps" });
  }
  return tf.tidy(() => {
    const lp = asFloatTensor(logps);
    const m = asFloatTensor(mask);
    const old = oldLogps === null ? stopGradient(lp) : asFloatTensor(oldLogps);
    let a = asFloatTensor(advantages);
    if (a.rank === 1) a = tf.expandDims(a, 1);
    const surrogate = clippedSurrogate(tf.sub(lp, old), a, bounds, options.delta ?? null);
    let perTokenLoss = surrogate.loss;
    let kl: tf.Scalar | undefined;
    if (refLogps !== null) {
      const perTokenKl = klPenalty(lp, refLogps, "k3");
      kl = maskedTokenMean(perTokenKl, m);
      if (beta !== 0) perTokenLoss = tf.add(perTokenLoss, tf.mul(perTokenKl, beta));
    }
    const masked = tf.mul(perTokenLoss, m);
    const rows = masked.shape[0]!;
    let loss: tf.Tensor;
    switch (lossType) {
      case "grpo":
        loss = tf.mean(tf.div(tf.sum(masked, 1), tf.maximum(tf.sum(m, 1), 1)));
        break;
      case "bnpo":
        loss = tf.div(tf.sum(masked), tf.maximum(tf.sum(m), 1));
        break;
      case "dr_grpo":
        loss = tf.div(tf.sum(masked), rows * (options.maxCompletionLength ?? 256));
        break;
      case "dapo":
        loss = tf.div(tf.sum(masked), options.numItemsInBatch ?? tf.maximum(tf.sum(m), 1));
        break;
    }
    if (lossType !== "dapo") loss = tf.div(loss, accumulation);
    const lowMean = maskedTokenMean(surrogate.lowClipped, m);
    const highMean = maskedTokenMean(surrogate.highClipped, m);
    const regionMean = maskedTokenMean(tf.add(surrogate.lowClipped, surrogate.highClipped), m);
    return {
      loss: loss as tf.Scalar,
      perTokenLoss: perTokenLoss as tf.Tensor2D,
      clipRatio: { lowMean, highMean, regionMean },
      ...(kl === undefined ? {} : { kl }),
    };
  });
}
