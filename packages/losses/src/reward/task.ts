/**
 * The pair-score task (reward modelling): one classifier forward over the B chosen and B rejected sequences,
 * the scores at each row's last real token, and the run's `"pair-scores"` loss.
 * @module
 */
import {
  checkLossKind,
  type ComputeLossContext,
  collateReward,
  type Loss,
  type PairScoreInputs,
  type RewardBatch,
  type SequenceClassifier,
  type StepOutput,
  type TokenizedPreference,
  type TrainingTask,
  tf,
} from "@prefkit/core";
import type { IndexedRow } from "../common/lazy-source.js";

/** A reward micro-batch: core's {@link RewardBatch} (2B rows, chosen first) plus dataset row indices. */
export interface RewardTrainerBatch extends RewardBatch {
  /** Dataset index of each pair. */
  rowIndices: number[];
}

/** Rows → a {@link RewardTrainerBatch} (right-padded with `padTokenId`, masks from lengths). */
export function collateRewardRows(padTokenId: number) {
  return (rows: Array<IndexedRow<TokenizedPreference>>): RewardTrainerBatch => {
    const batch = collateReward(
      rows.map((r) => r.row),
      { padTokenId },
    ) as RewardTrainerBatch;
    batch.rowIndices = rows.map((r) => r.index);
    return batch;
  };
}

/** Scores chosen and rejected sequences with a one-label classifier and applies the `"pair-scores"` loss. */
export class PairScoreTask implements TrainingTask<RewardTrainerBatch> {
  /** Task name. */
  readonly name = "pair-scores";

  /**
   * @param classifier the reward model (one label).
   * @param loss the `"pair-scores"` loss (`"reward"`: −log σ(r_c − r_r − margin) + centring).
   */
  constructor(
    readonly classifier: SequenceClassifier,
    readonly loss: Loss<PairScoreInputs>,
  ) {
    checkLossKind(loss, "pair-scores", "scored pairs");
  }

  /** Each micro-batch weighs its number of pairs, so accumulation equals one big batch. */
  batchWeight(batch: RewardTrainerBatch): number {
    return batch.batchSize;
  }

  /** Loss and TRL's reward metrics of one micro-batch (one classifier forward over 2B rows). */
  compute(batch: RewardTrainerBatch, _ctx: ComputeLossContext): StepOutput {
    const b = batch.batchSize;
    const t = batch.inputIds[0]!.length;
    const ids = tf.tensor2d(batch.inputIds.flat(), [2 * b, t], "int32");
    const att = tf.tensor2d(batch.attentionMask.flat(), [2 * b, t], "int32");
    const scores = tf.reshape(this.classifier.forward({ inputIds: ids, attentionMask: att }).logits, [2 * b]);
    const out = this.loss.compute({
      chosenScores: tf.slice(scores, [0], [b]) as tf.Tensor1D,
      rejectedScores: tf.slice(scores, [b], [b]) as tf.Tensor1D,
      margins: batch.margins !== undefined ? tf.tensor1d(batch.margins) : null,
    });
    const numTokens = batch.lengths.reduce((s, l) => s + l, 0);
    return { ...out, numTokens };
  }
}
