/**
 * The preference task: one fused policy forward over chosen and rejected concatenated (2B rows), the
 * reference log-probs outside the gradient tape (or from the precomputed cache), the run's
 * `"preference"` loss, and TRL's metrics. DPO (every loss type), custom preference losses and the
 * reference-free methods all train through it.
 * @module
 */
import {
  checkLossKind,
  type CausalLM,
  type ComputeLossContext,
  ConfigError,
  collateDpo,
  type DpoBatch,
  tryFusedSequenceLogProbs,
  type Loss,
  type PreferenceInputs,
  type StepOutput,
  sequenceLogProbs,
  type TaskContext,
  type TokenizedPreference,
  type TrainingTask,
  tf,
} from "@prefkit/core";
import type { IndexedRow } from "../common/lazy-source.js";
import { groupTokenMetrics } from "../common/token-metrics.js";
import type { RefCacheKeys, RefLogProbCache, Split } from "./ref-cache.js";
import { type ReferenceSource, referenceLogProbSums } from "./reference.js";
import { ldTokenWeights, weightedLogpSums, wpoPairWeights } from "./token-weights.js";

/** A preference micro-batch: core's {@link DpoBatch} plus dataset row indices and the reference log-probs. */
export interface PreferenceBatch extends DpoBatch {
  /** Dataset index of each pair. */
  rowIndices: number[];
  /** Which split the rows come from (the reference cache is per split). */
  split: Split;
  /** log πref(y_c|x) per pair (from the cache, or computed before the step outside the gradient tape). */
  refChosenLogps?: number[];
  /** log πref(y_r|x) per pair. */
  refRejectedLogps?: number[];
}

/** Rows → a {@link PreferenceBatch} of `split` (right-padded with `padTokenId`). */
export function collatePreferences(padTokenId: number, split: Split) {
  return (rows: Array<IndexedRow<TokenizedPreference>>): PreferenceBatch => {
    const batch = collateDpo(
      rows.map((r) => r.row),
      { padTokenId },
    ) as PreferenceBatch;
    batch.rowIndices = rows.map((r) => r.index);
    batch.split = split;
    return batch;
  };
}

/** What a {@link PreferenceTask} is built from. */
export interface PreferenceTaskOptions {
  /** The policy. */
  model: CausalLM;
  /** The `"preference"` loss to minimise. */
  loss: Loss<PreferenceInputs>;
  /** The reference, or undefined for a reference-free loss. */
  reference: ReferenceSource | undefined;
  /** The precomputed reference log-probs, when configured. */
  refCache?: RefLogProbCache | undefined;
  /** Tokenised rows per split, once loaded (the cache needs them). */
  rows?: (split: Split) => readonly TokenizedPreference[] | undefined;
  /** β of the implicit rewards logged when the loss returns none (TRL logs β·(log πθ − log πref)). */
  beta: number;
  /**
   * LD-DPO's α (TRL's `ld_alpha`): completion tokens past the pair's shared length weigh α in the summed
   * log-probs of the policy and the reference (see {@link ldTokenWeights}). Null or absent: plain sums.
   */
  ldAlpha?: number | null;
  /**
   * WPO (TRL's `use_weighting`): pass the loss per-pair weights {@link wpoPairWeights} as
   * `PreferenceInputs.policyWeights`. They need the policy's logits, so the policy runs through
   * `model.forward` instead of the fused LM head: the `[2B, T, V]` logits (and their gradient) are
   * materialised, which gives up the fused head's memory saving.
   */
  useWeighting?: boolean;
}

/**
 * Turns preference micro-batches into the loss: see the module comment. Metrics (TRL names):
 * `rewards/chosen|rejected|margins|accuracies` (from the loss's rewards, else β·(log πθ − log πref)),
 * `logps/chosen|rejected`, `logits/chosen|rejected`, `mean_token_accuracy`, `entropy`, plus the loss's own.
 */
export class PreferenceTask implements TrainingTask<PreferenceBatch> {
  /** Task name (the key of its checkpointed state). */
  readonly name = "preference";

  /** @param options see {@link PreferenceTaskOptions}. */
  constructor(readonly options: PreferenceTaskOptions) {
    checkLossKind(options.loss, "preference", "preference pairs");
  }

  /** The precomputed reference log-probs of every split that has rows (when the cache is configured). */
  async prepare(context: TaskContext): Promise<void> {
    const { refCache, rows } = this.options;
    if (refCache === undefined || rows === undefined) return;
    for (const split of ["train", "eval"] as const) {
      const r = rows(split);
      if (r !== undefined) await refCache.ensure(split, r, context.state.globalStep);
    }
  }

  /** The reference pass runs before the gradient tape opens (TRL's `torch.no_grad()`). */
  beforeStep(batches: PreferenceBatch[]): void {
    for (const b of batches) this.attachReference(b);
  }

  /** Each micro-batch weighs its number of pairs, so accumulation equals one big batch. */
  batchWeight(batch: PreferenceBatch): number {
    return batch.batchSize;
  }

  /** The cache keys in use (checkpointed). */
  getState(): RefCacheKeys | undefined {
    return this.options.refCache?.state();
  }

  /** Restore the cache keys of the run being resumed. */
  loadState(state: unknown): void {
    if (state !== undefined && state !== null) this.options.refCache?.restore(state as RefCacheKeys);
  }

  private attachReference(batch: PreferenceBatch): void {
    if (batch.refChosenLogps !== undefined || this.options.loss.needsReference === false) return;
    const cached = this.options.refCache?.get(batch.split);
    if (cached !== undefined) {
      batch.refChosenLogps = batch.rowIndices.map((i) => cached.chosen[i]!);
      batch.refRejectedLogps = batch.rowIndices.map((i) => cached.rejected[i]!);
      return;
    }
    const reference = this.options.reference;
    if (reference === undefined || reference.kind === "policy-at-start") {
      throw new ConfigError("reference log-probs were not precomputed for this batch", {
        field: "precomputeRefLogProbs",
      });
    }
    const sums = referenceLogProbSums(reference, batch, this.options.ldAlpha ?? null);
    batch.refChosenLogps = sums.slice(0, batch.batchSize);
    batch.refRejectedLogps = sums.slice(batch.batchSize);
  }

  /** Loss and TRL metrics of one micro-batch (one fused forward over 2B rows). */
  compute(batch: PreferenceBatch, _ctx: ComputeLossContext): StepOutput {
    if (batch.refChosenLogps === undefined) this.attachReference(batch);
    const { model, loss: lossFn, beta, ldAlpha, useWeighting } = this.options;
    const b = batch.batchSize;
    const t = batch.inputIds[0]!.length;
    const ids = tf.tensor2d(batch.inputIds.flat(), [2 * b, t], "int32");
    const att = tf.tensor2d(batch.attentionMask.flat(), [2 * b, t], "int32");
    // With a plain LM head the chunked fused head gives the log-probs and the per-token logging stats
    // without any [2B, T, V] logits; otherwise (or when WPO needs the logits) the logits path.
    const fused =
      useWeighting !== true
        ? tryFusedSequenceLogProbs(model, ids, batch.completionMask, { attentionMask: att, withStats: true })
        : undefined;
    const logits = fused === undefined ? model.forward({ inputIds: ids, attentionMask: att }).logits : undefined;
    const lp = fused ?? sequenceLogProbs(logits!, ids, batch.completionMask);
    const sums =
      ldAlpha === null || ldAlpha === undefined
        ? lp.sums
        : weightedLogpSums(lp.perToken, ldTokenWeights(batch.completionMask, ldAlpha));
    const chosen = tf.slice(sums, [0], [b]) as tf.Tensor1D;
    const rejected = tf.slice(sums, [b], [b]) as tf.Tensor1D;
    const chosenLengths = tf.slice(lp.counts, [0], [b]) as tf.Tensor1D;
    const refChosen = tf.tensor1d(batch.refChosenLogps ?? new Array<number>(b).fill(0));
    const refRejected = tf.tensor1d(batch.refRejectedLogps ?? new Array<number>(b).fill(0));
    const inputs: PreferenceInputs = {
      chosenLogps: chosen,
      rejectedLogps: rejected,
      refChosenLogps: refChosen,
      refRejectedLogps: refRejected,
      chosenLengths,
      rejectedLengths: tf.slice(lp.counts, [b], [b]) as tf.Tensor1D,
      // The NLL (RPO / "sft") is on the unweighted log-probs, as TRL's cross-entropy on the chosen tokens.
      chosenNll: tf.div(tf.neg(tf.sum(tf.slice(lp.sums, [0], [b]))), tf.maximum(tf.sum(chosenLengths), 1)) as tf.Scalar,
      chosenSequenceNll: sequenceNll(lp.nextTokenLogProbs, batch.attentionMask, b),
      ...(useWeighting === true ? { policyWeights: wpoPairWeights(logits!, lp.perToken, batch.completionMask) } : {}),
    };
    const out = lossFn.compute(inputs);
    const rewards = out.rewards ?? {
      chosen: tf.mul(tf.sub(chosen, refChosen), beta) as tf.Tensor1D,
      rejected: tf.mul(tf.sub(rejected, refRejected), beta) as tf.Tensor1D,
    };
    const [logitsChosen, logitsRejected, accuracy, entropy] = tf.unstack(
      groupTokenMetrics(
        batch.completionMask,
        batch.inputIds.map((_, i) => i < b),
        ids,
        fused?.stats,
        logits,
      ),
    );
    const metrics: Record<string, tf.Scalar | number> = {
      "logps/chosen": tf.mean(chosen) as tf.Scalar,
      "logps/rejected": tf.mean(rejected) as tf.Scalar,
      "logits/chosen": logitsChosen as tf.Scalar,
      "logits/rejected": logitsRejected as tf.Scalar,
      mean_token_accuracy: accuracy as tf.Scalar,
      entropy: entropy as tf.Scalar,
      ...(out.metrics ?? {}),
    };
    const numTokens = batch.promptLengths.reduce((s, p, i) => s + p + batch.completionLengths[i]!, 0);
    return { loss: out.loss, metrics, rewards, numTokens };
  }
}

/**
 * Token-mean NLL over every real target token (prompt and completion) of the first `rows` rows: position t
 * predicts token t + 1, which counts when it is real (TRL's ORPO: labels = input ids where attention is 1).
 */
function sequenceNll(nextTokenLogProbs: tf.Tensor2D, attentionMask: number[][], rows: number): tf.Scalar {
  const t = attentionMask[0]!.length;
  const targets = tf.tensor2d(
    attentionMask.slice(0, rows).flatMap((row) => [...row.slice(1), 0]),
    [rows, t],
    "float32",
  );
  const lp = tf.slice(nextTokenLogProbs, [0, 0], [rows, t]);
  return tf.div(tf.neg(tf.sum(tf.mul(lp, targets))), tf.maximum(tf.sum(targets), 1)) as tf.Scalar;
}
