/**
 * The completion task (SFT): one forward over the batch, the summed log-probs of the loss tokens, the run's
 * `"completion"` loss, and TRL's SFT metrics.
 * @module
 */
import {
  checkLossKind,
  type CausalLM,
  type CompletionInputs,
  type ComputeLossContext,
  collateSft,
  type Loss,
  type SftBatch,
  type StepOutput,
  sequenceLogProbs,
  type TokenizedCompletion,
  type TrainingTask,
  tf,
} from "@prefkit/core";
import type { IndexedRow } from "../common/lazy-source.js";
import { tokenMetrics } from "../common/token-metrics.js";

/** An SFT micro-batch: core's {@link SftBatch} plus the mask of the positions the loss scores. */
export interface SFTTrainerBatch extends SftBatch {
  /** [B][T] 1 where the token is a loss target (label ≠ ignore index), before the causal shift. */
  lossMask: number[][];
  /** Tokens the loss scores (targets at positions ≥ 1): the micro-batch's weight in accumulation. */
  numLossTokens: number;
}

/** Rows → an {@link SFTTrainerBatch} (`completionOnly()` is read when the batch is made: it depends on the data). */
export function collateCompletions(padTokenId: number, completionOnly: () => boolean) {
  return (rows: Array<IndexedRow<TokenizedCompletion>>): SFTTrainerBatch => {
    const batch = collateSft(
      rows.map((r) => r.row),
      { padTokenId, completionOnlyLoss: completionOnly() },
    ) as SFTTrainerBatch;
    batch.lossMask = batch.labels.map((row) => row.map((l) => (l === -100 ? 0 : 1)));
    batch.numLossTokens = batch.lossMask.reduce((s, row) => s + row.slice(1).reduce((a, x) => a + x, 0), 0);
    return batch;
  };
}

/**
 * Token-mean next-token cross-entropy over the loss tokens (through the run's `"completion"` loss, `"nll"`
 * by default) and TRL's SFT metrics `mean_token_accuracy` and `entropy`. Micro-batches weigh their loss
 * tokens, so gradient accumulation equals one big batch.
 */
export class CompletionTask implements TrainingTask<SFTTrainerBatch> {
  /** Task name. */
  readonly name = "completion";

  /**
   * @param model the model to fine-tune.
   * @param loss the `"completion"` loss.
   * @param computeEntropy also log `entropy`.
   */
  constructor(
    readonly model: CausalLM,
    readonly loss: Loss<CompletionInputs>,
    readonly computeEntropy: boolean,
  ) {
    checkLossKind(loss, "completion", "single sequences");
  }

  /** Micro-batches weigh their loss tokens (token-level mean over the accumulated batch). */
  batchWeight(batch: SFTTrainerBatch): number {
    return Math.max(batch.numLossTokens, 1e-9);
  }

  /** Loss and TRL's SFT metrics of one micro-batch. */
  compute(batch: SFTTrainerBatch, _ctx: ComputeLossContext): StepOutput {
    const b = batch.inputIds.length;
    const t = batch.inputIds[0]!.length;
    const ids = tf.tensor2d(batch.inputIds.flat(), [b, t], "int32");
    const att = tf.tensor2d(batch.attentionMask.flat(), [b, t], "int32");
    const logits = this.model.forward({ inputIds: ids, attentionMask: att }).logits;
    const lp = sequenceLogProbs(logits, ids, batch.lossMask);
    const nll = tf.div(tf.neg(tf.sum(lp.sums)), tf.maximum(tf.sum(lp.counts), 1)) as tf.Scalar;
    const out = this.loss.compute({ logps: lp.sums, lengths: lp.counts, nll });
    // Position p predicts token p + 1: the scored positions are the loss mask shifted left.
    const scored: tf.Tensor2D = tf.tensor2d(
      batch.lossMask.flatMap((row) => [...row.slice(1), 0]),
      [b, t],
      "float32",
    );
    const nextIds = tf.concat([tf.slice(ids, [0, 1], [b, t - 1]), tf.zeros([b, 1], "int32")], 1) as tf.Tensor2D;
    const values = tokenMetrics(logits, nextIds, {
      meanLogit: [],
      accuracy: scored,
      entropy: this.computeEntropy ? scored : undefined,
    });
    const parts = tf.unstack(values) as tf.Scalar[];
    const metrics: Record<string, tf.Scalar | number> = { mean_token_accuracy: parts[0]!, ...(out.metrics ?? {}) };
    if (this.computeEntropy) metrics["entropy"] = parts[1]!;
    const numTokens = batch.attentionMask.reduce((s, row) => s + row.reduce((a, x) => a + x, 0), 0);
    return { loss: out.loss, metrics, numTokens };
  }
}
