/**
 * `SFTTrainer`: next-token cross-entropy on TRL's SFT formats, on core's `BaseTrainer`.
 * @module
 */
import {
  type CausalLM,
  type ComputeLossContext,
  collateSft,
  type LossRegistry,
  type SftBatch,
  type StepOutput,
  sequenceLogProbs,
  type TokenizedCompletion,
  tf,
} from "@prefkit/core";
import type { DependencyContainer } from "tsyringe";
import { type CompletionDatasetInput, resolveCompletionDataset } from "./datasets.js";
import { defaultSFTConfig, type SFTConfig, validateSFTConfig } from "./sft-config.js";
import { PreparingTrainer, type TrainerCommonOptions } from "./preparing-trainer.js";
import { type DeferredBatchSource, deferredSources, definedFields, trainerContainer } from "./setup.js";
import { tokenMetrics } from "./token-metrics.js";

/** An SFT micro-batch: core's {@link SftBatch} plus the mask of the positions the loss scores. */
export interface SFTTrainerBatch extends SftBatch {
  /** [B][T] 1 where the token is a loss target (label ≠ ignore index), before the causal shift. */
  lossMask: number[][];
  /** Tokens the loss scores (targets at positions ≥ 1): the micro-batch's weight in accumulation. */
  numLossTokens: number;
}

/** What the `SFTTrainer` constructor takes (TRL's parameter names in camelCase). */
export interface SFTTrainerOptions extends TrainerCommonOptions {
  /** The model to fine-tune. */
  model: CausalLM;
  /** The config; missing fields take TRL's defaults ({@link defaultSFTConfig}). */
  args?: Partial<SFTConfig>;
  /** Training data: tokenised, raw rows (`text`, `messages`, `prompt`/`completion`), or a file path. */
  trainDataset: CompletionDatasetInput;
  /** Evaluation data, same forms. */
  evalDataset?: CompletionDatasetInput;
  /** Registry handed to plugins (a child is made for the run). */
  lossRegistry?: LossRegistry;
}

type Row = { row: TokenizedCompletion; index: number };

/**
 * Supervised fine-tuning (TRL's `SFTTrainer`): token-level mean cross-entropy of the next token over the
 * loss tokens of each batch: every real token for `text` / `messages` data, only completion tokens for
 * prompt-completion data with `completionOnlyLoss` (TRL's default). Micro-batches weigh their loss tokens,
 * so gradient accumulation equals one big batch.
 *
 * Logged metrics (TRL names): `loss`, `grad_norm`, `learning_rate`, `epoch`, `num_tokens`,
 * `mean_token_accuracy`, `entropy`; evaluation prefixes them with `eval_`.
 */
export class SFTTrainer extends PreparingTrainer<SFTTrainerBatch, SFTConfig> {
  /** Tokenised training examples (available after training started). */
  trainRows: TokenizedCompletion[] = [];
  /** Whether completion-only loss is in effect (resolved when training starts). */
  completionOnly = false;

  private readonly options: SFTTrainerOptions;
  private readonly container: DependencyContainer;
  private readonly trainSource: DeferredBatchSource<TokenizedCompletion, SFTTrainerBatch>;
  private readonly evalSource: DeferredBatchSource<TokenizedCompletion, SFTTrainerBatch> | undefined;
  private padTokenId = 0;

  /** Build a trainer; data is tokenised when {@link SFTTrainer.train} or {@link SFTTrainer.evaluate} first runs. */
  constructor(options: SFTTrainerOptions) {
    const args = { ...defaultSFTConfig(), ...definedFields(options.args ?? {}) } as SFTConfig;
    validateSFTConfig(args);
    const holder: { trainer?: SFTTrainer } = {};
    const collate = (rows: Row[]) => holder.trainer!.collate(rows);
    const { trainSource, evalSource } = deferredSources(args, options.evalDataset !== undefined, () => collate);
    super(args, options.model, trainSource, evalSource, options.callbacks ?? [], options.optimizer);
    holder.trainer = this;
    this.options = options;
    this.trainSource = trainSource;
    this.evalSource = evalSource;
    this.container = trainerContainer(options.lossRegistry);
    if (options.warn) this.notify = options.warn;
  }

  /** Free the optimizer state (the model stays the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }

  /** Tokenise the data and install the plugins (once, before the first step). */
  protected async doPrepare(): Promise<void> {
    const o = this.options;
    await this.installRunPlugins(this.container, o.plugins ?? []);
    const tokenizer = o.processingClass ?? o.tokenizer;
    this.padTokenId = this.args.padTokenId ?? tokenizer?.padTokenId ?? tokenizer?.eosTokenId ?? 0;
    const tokenize = { maxLength: this.args.maxLength, ...(o.warn ? { warn: o.warn } : {}) };
    const train = await resolveCompletionDataset(o.trainDataset, tokenizer, tokenize, "trainDataset");
    this.completionOnly = this.args.completionOnlyLoss ?? train.promptCompletion;
    this.trainRows = train.examples;
    this.trainSource.setRows(train.examples);
    if (o.evalDataset !== undefined) {
      const ev = await resolveCompletionDataset(o.evalDataset, tokenizer, tokenize, "evalDataset");
      this.evalSource!.setRows(ev.examples);
    }
  }

  private collate(rows: Row[]): SFTTrainerBatch {
    const batch = collateSft(
      rows.map((r) => r.row),
      { padTokenId: this.padTokenId, completionOnlyLoss: this.completionOnly },
    ) as SFTTrainerBatch;
    batch.lossMask = batch.labels.map((row) => row.map((l) => (l === -100 ? 0 : 1)));
    batch.numLossTokens = batch.lossMask.reduce((s, row) => s + row.slice(1).reduce((a, x) => a + x, 0), 0);
    return batch;
  }

  /** Micro-batches weigh their loss tokens (token-level mean over the accumulated batch). */
  protected override batchWeight(batch: SFTTrainerBatch): number {
    return Math.max(batch.numLossTokens, 1e-9);
  }

  /** Token-mean next-token cross-entropy over the loss tokens, and TRL's SFT metrics. */
  protected computeLoss(batch: SFTTrainerBatch, _ctx: ComputeLossContext): StepOutput {
    const b = batch.inputIds.length;
    const t = batch.inputIds[0]!.length;
    const ids = tf.tensor2d(batch.inputIds.flat(), [b, t], "int32");
    const att = tf.tensor2d(batch.attentionMask.flat(), [b, t], "int32");
    const logits = this.model.forward({ inputIds: ids, attentionMask: att }).logits;
    const lp = sequenceLogProbs(logits, ids, batch.lossMask);
    const denom = tf.maximum(tf.sum(lp.counts), 1);
    const loss = tf.div(tf.neg(tf.sum(lp.sums)), denom) as tf.Scalar;
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
      entropy: this.args.computeEntropy ? scored : undefined,
    });
    const parts = tf.unstack(values) as tf.Scalar[];
    const metrics: Record<string, tf.Scalar> = { mean_token_accuracy: parts[0]! };
    if (this.args.computeEntropy) metrics["entropy"] = parts[1]!;
    const numTokens = batch.attentionMask.reduce((s, row) => s + row.reduce((a, x) => a + x, 0), 0);
    return { loss, metrics, numTokens };
  }
}
