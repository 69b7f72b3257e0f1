/**
 * The unpaired task (KTO): one policy forward over each row's prompt + completion, and — outside the
 * gradient tape, as TRL's `no_grad` passes — the reference on the same rows and the policy and reference on
 * the mismatched (prompt, neighbour's completion) pairs from which the batch KL estimate comes.
 * @module
 */
import {
  type CausalLM,
  checkLossKind,
  collateSft,
  type ComputeLossContext,
  tryFusedSequenceLogProbs,
  type StepOutput,
  sequenceLogProbs,
  type TokenizedUnpaired,
  type TrainingTask,
  tf,
} from "@prefkit/core";
import type { IndexedRow } from "../common/lazy-source.js";
import { groupTokenMetrics } from "../common/token-metrics.js";
import { completionLogProbSums, type ReferenceSource } from "../preference/reference.js";
import type { UnpairedLoss } from "./objective.js";

/** An unpaired row with the completion its KL pair uses (TRL's `KL_completion_ids`). */
export interface KTORow extends TokenizedUnpaired {
  /** The completion of this row's neighbour in its sequential batch. */
  klCompletionIds: number[];
}

/** Right-padded ids, attention and completion masks of (prompt, completion) rows. */
export interface Padded {
  inputIds: number[][];
  attentionMask: number[][];
  completionMask: number[][];
}

/** A KTO micro-batch: the rows, their KL pairs, and (once computed) the no-gradient log-probs. */
export interface KTOBatch {
  /** Rows in the micro-batch. */
  batchSize: number;
  /** Dataset index of each row. */
  rowIndices: number[];
  /** Per row: true for desirable. */
  labels: boolean[];
  /** prompt + completion of each row. */
  rows: Padded;
  /** prompt + neighbour's completion of each row (KL pairs). */
  kl: Padded;
  /** Attention-mask tokens of `rows`. */
  numTokens: number;
  /** Σ log πref of each row's completion (filled before the step). */
  refLogps?: number[];
  /** Σ log πθ of each KL pair, without gradient (filled before the step when the loss needs the KL). */
  klLogps?: number[];
  /** Σ log πref of each KL pair. */
  refKlLogps?: number[];
}

function pad(prompts: number[][], completions: number[][], padTokenId: number): Padded {
  const sft = collateSft(
    prompts.map((promptIds, i) => ({ promptIds, completionIds: completions[i]! })),
    { padTokenId, completionOnlyLoss: true },
  );
  return {
    inputIds: sft.inputIds,
    attentionMask: sft.attentionMask,
    completionMask: sft.labels.map((row) => row.map((l) => (l === -100 ? 0 : 1))),
  };
}

/** Rows → a {@link KTOBatch} (right-padded with `padTokenId`). */
export function collateKTO(padTokenId: number) {
  return (rows: Array<IndexedRow<KTORow>>): KTOBatch => {
    const prompts = rows.map((r) => r.row.promptIds);
    const main = pad(
      prompts,
      rows.map((r) => r.row.completionIds),
      padTokenId,
    );
    return {
      batchSize: rows.length,
      rowIndices: rows.map((r) => r.index),
      labels: rows.map((r) => r.row.label),
      rows: main,
      kl: pad(
        prompts,
        rows.map((r) => r.row.klCompletionIds),
        padTokenId,
      ),
      numTokens: main.attentionMask.reduce((s, row) => s + row.reduce((a, x) => a + x, 0), 0),
    };
  };
}

/**
 * Turns KTO micro-batches into the run's `"unpaired"` loss. Metrics (TRL names): `kl`, `rewards/chosen`,
 * `rewards/rejected`, `rewards/margins` (each kind only when the batch has rows of it), `logps/chosen`,
 * `logps/rejected`, `logits/chosen`, `logits/rejected`, `entropy`.
 */
export class UnpairedTask implements TrainingTask<KTOBatch> {
  /** Task name. */
  readonly name = "unpaired";

  /**
   * @param model the policy.
   * @param loss the `"unpaired"` loss (`"kto"`, `"apo_zero_unpaired"` or a user's).
   * @param reference the frozen reference.
   */
  constructor(
    readonly model: CausalLM,
    readonly loss: UnpairedLoss,
    readonly reference: ReferenceSource,
  ) {
    checkLossKind(loss, "unpaired", "unpaired feedback");
  }

  /** Each micro-batch weighs its rows. */
  batchWeight(batch: KTOBatch): number {
    return batch.batchSize;
  }

  /** The no-gradient passes: reference on the rows; policy and reference on the KL pairs when the loss uses them. */
  beforeStep(batches: KTOBatch[]): void {
    for (const b of batches) {
      if (b.refLogps !== undefined) continue;
      const sums = (net: CausalLM, p: Padded) =>
        completionLogProbSums(net, p.inputIds, p.completionMask, p.attentionMask);
      b.refLogps = this.reference.run((net) => sums(net, b.rows));
      if (this.loss.klPass !== false) {
        b.klLogps = sums(this.model, b.kl);
        b.refKlLogps = this.reference.run((net) => sums(net, b.kl));
      }
    }
  }

  /** Loss and TRL's KTO metrics of one micro-batch. */
  compute(batch: KTOBatch, _ctx: ComputeLossContext): StepOutput {
    if (batch.refLogps === undefined) this.beforeStep([batch]);
    const { rows, labels } = batch;
    const b = batch.batchSize;
    const t = rows.inputIds[0]!.length;
    const ids = tf.tensor2d(rows.inputIds.flat(), [b, t], "int32");
    const att = tf.tensor2d(rows.attentionMask.flat(), [b, t], "int32");
    const fused = tryFusedSequenceLogProbs(this.model, ids, rows.completionMask, {
      attentionMask: att,
      withStats: true,
    });
    const logits = fused === undefined ? this.model.forward({ inputIds: ids, attentionMask: att }).logits : undefined;
    const logps = (fused ?? sequenceLogProbs(logits!, ids, rows.completionMask)).sums;
    const out = this.loss.compute({
      logps,
      refLogps: tf.tensor1d(batch.refLogps!),
      labels,
      ...(batch.klLogps !== undefined
        ? { klLogps: tf.tensor1d(batch.klLogps), refKlLogps: tf.tensor1d(batch.refKlLogps!) }
        : {}),
    });
    const [logitsChosen, logitsRejected, , entropy] = tf.unstack(
      groupTokenMetrics(rows.completionMask, labels, ids, fused?.stats, logits),
    );
    const metrics: Record<string, tf.Scalar | number> = { entropy: entropy as tf.Scalar };
    const pick = (want: boolean) => labels.flatMap((l, i) => (l === want ? [i] : []));
    const [desirable, undesirable] = [pick(true), pick(false)];
    if (desirable.length > 0) {
      metrics["logps/chosen"] = tf.mean(tf.gather(logps, desirable)) as tf.Scalar;
      metrics["logits/chosen"] = logitsChosen as tf.Scalar;
    }
    if (undesirable.length > 0) {
      metrics["logps/rejected"] = tf.mean(tf.gather(logps, undesirable)) as tf.Scalar;
      metrics["logits/rejected"] = logitsRejected as tf.Scalar;
    }
    Object.assign(metrics, out.metrics ?? {});
    return { loss: out.loss, metrics, ...(out.rewards ? { rewards: out.rewards } : {}), numTokens: batch.numTokens };
  }
}
