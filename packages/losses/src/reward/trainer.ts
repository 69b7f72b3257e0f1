/**
 * `RewardTrainer`: TRL's reward-model training loop on core's `BaseTrainer`.
 * @module
 */
import {
  type CausalLM,
  type ComputeLossContext,
  ConfigError,
  collateReward,
  DatasetError,
  droppedCount,
  type RewardBatch,
  type SequenceClassifier,
  type StepOutput,
  type TokenizedPreference,
  type TokenizerLike,
  tf,
} from "@prefkit/core";
import type { DependencyContainer } from "tsyringe";
import { type PreferenceDatasetInput, resolvePreferenceDataset } from "../trainers/datasets.js";
import { PreparingTrainer, type TrainerCommonOptions } from "../trainers/preparing-trainer.js";
import { type DeferredBatchSource, deferredSources, definedFields, trainerContainer } from "../trainers/setup.js";
import { defaultRewardConfig, type RewardConfig, validateRewardConfig } from "./config.js";
import { rewardLoss } from "./loss.js";

/** A reward micro-batch: core's {@link RewardBatch} (2B rows, chosen first) plus dataset row indices. */
export interface RewardTrainerBatch extends RewardBatch {
  /** Dataset index of each pair. */
  rowIndices: number[];
}

/** What the `RewardTrainer` constructor takes, with TRL's parameter names in camelCase. */
export interface RewardTrainerOptions extends TrainerCommonOptions {
  /**
   * The reward model: a {@link SequenceClassifier} with one label, e.g.
   * `AutoModelForSequenceClassification.fromPretrained(dir, { numLabels: 1, seed })` from `@prefkit/models`.
   */
  model: SequenceClassifier;
  /** The config; missing fields take TRL's defaults ({@link defaultRewardConfig}). */
  args?: Partial<RewardConfig>;
  /**
   * Training pairs: tokenised (`{ promptIds, chosenIds, rejectedIds, margin? }`), raw TRL rows
   * (`{ prompt, chosen, rejected, margin? }` or implicit `{ chosen, rejected }`, strings or messages; the
   * model scores prompt+chosen and prompt+rejected), or a JSON/JSONL file path.
   */
  trainDataset: PreferenceDatasetInput;
  /** Evaluation pairs, same forms. */
  evalDataset?: PreferenceDatasetInput;
}

/** Rows dropped because prompt+chosen or prompt+rejected is longer than `maxLength`, per split. */
export interface RewardDroppedRows {
  /** Training rows dropped. */
  train: number;
  /** Evaluation rows dropped. */
  eval: number;
}

/** Fill TRL's defaults into `args` and validate them. */
export function resolveRewardConfig(args: Partial<RewardConfig> = {}): RewardConfig {
  const config = { ...defaultRewardConfig(), ...definedFields(args) } as RewardConfig;
  validateRewardConfig(config);
  return config;
}

type Split = "train" | "eval";

/**
 * Reward-model training (TRL's `RewardTrainer`): each micro-batch is one forward of the classifier over
 * the B chosen and B rejected sequences (core's `collateReward`, right-padded, masks from lengths), the
 * rewards are the scores at each row's last real token, and the loss is {@link rewardLoss}:
 * −log σ(r_c − r_r − margin) (margin from the dataset's optional `margin` column) plus
 * `centerRewardsCoefficient` · mean((r_c + r_r)²).
 *
 * Rows longer than `maxLength` are dropped, not truncated, and counted ({@link RewardTrainer.droppedRows},
 * plus a warning). `disableDropout` is accepted for parity; prefkit's decoders have no dropout.
 *
 * Logged metrics (TRL names): `loss`, `grad_norm`, `learning_rate`, `epoch`, `num_tokens`, `accuracy`,
 * `margin`, `min_reward`, `mean_reward`, `max_reward`; evaluation prefixes them with `eval_`.
 *
 * ```ts
 * const model = await AutoModelForSequenceClassification.fromPretrained(dir, { numLabels: 1, seed: 42 });
 * const trainer = new RewardTrainer({ model, args: { maxSteps: 50, outputDir }, trainDataset, processingClass: tok });
 * await trainer.train();
 * ```
 */
export class RewardTrainer extends PreparingTrainer<RewardTrainerBatch, RewardConfig> {
  /** The reward model being trained. */
  classifier: SequenceClassifier;
  /** Tokenised training pairs (available after training started). */
  trainRows: TokenizedPreference[] = [];
  /** Tokenised evaluation pairs, if any. */
  evalRows: TokenizedPreference[] | undefined;
  /** Over-long rows dropped per split (filled when the data is prepared). */
  readonly droppedRows: RewardDroppedRows = { train: 0, eval: 0 };

  private readonly options: RewardTrainerOptions;
  private readonly container: DependencyContainer;
  private readonly trainSource: DeferredBatchSource<TokenizedPreference, RewardTrainerBatch>;
  private readonly evalSource: DeferredBatchSource<TokenizedPreference, RewardTrainerBatch> | undefined;
  private readonly warnFn: (message: string) => void;
  private padTokenId = 0;

  /**
   * Build a trainer; data is tokenised when {@link RewardTrainer.train} or {@link RewardTrainer.evaluate} runs.
   * @throws ConfigError for a bad config field or a model with `numLabels` ≠ 1.
   */
  constructor(options: RewardTrainerOptions) {
    const args = resolveRewardConfig(options.args);
    if (options.model.numLabels !== 1) {
      throw new ConfigError(`a reward model needs numLabels = 1, got ${options.model.numLabels}`, { field: "model" });
    }
    const holder: { trainer?: RewardTrainer } = {};
    const collate = (rows: Array<{ row: TokenizedPreference; index: number }>) => holder.trainer!.collate(rows);
    const { trainSource, evalSource } = deferredSources(args, options.evalDataset !== undefined, () => collate);
    // BaseTrainer only uses namedParameters/trainableVariables/savePretrained, which a classifier has.
    super(
      args,
      options.model as unknown as CausalLM,
      trainSource,
      evalSource,
      options.callbacks ?? [],
      options.optimizer,
    );
    holder.trainer = this;
    this.classifier = options.model;
    this.options = options;
    this.trainSource = trainSource;
    this.evalSource = evalSource;
    this.container = trainerContainer(undefined);
    this.warnFn = options.warn ?? ((m) => console.warn(m));
    this.notify = this.warnFn;
  }

  /** Free the optimizer state (not the model). */
  dispose(): void {
    this.optimizer.dispose();
  }

  /** Tokenise the data and install the plugins (once, before the first step). */
  protected async doPrepare(): Promise<void> {
    const o = this.options;
    const model = await this.installRunPlugins(this.container, o.plugins ?? []);
    this.classifier = model as unknown as SequenceClassifier;
    const tokenizer = o.processingClass ?? o.tokenizer;
    const configPad = this.classifier.config["pad_token_id"];
    this.padTokenId =
      this.args.padTokenId ??
      tokenizer?.padTokenId ??
      tokenizer?.eosTokenId ??
      (typeof configPad === "number" ? configPad : 0);
    this.trainRows = await this.load(o.trainDataset, tokenizer, "train");
    this.trainSource.setRows(this.trainRows);
    if (o.evalDataset !== undefined) {
      this.evalRows = await this.load(o.evalDataset, tokenizer, "eval");
      this.evalSource!.setRows(this.evalRows);
    }
  }

  /** Tokenise (raw rows: the pipeline drops over-long rows) and drop over-long tokenised rows; count both. */
  private async load(input: PreferenceDatasetInput, tokenizer: TokenizerLike | undefined, split: Split) {
    const field = split === "train" ? "trainDataset" : "evalDataset";
    const maxLength = this.args.maxLength;
    const resolved = await resolvePreferenceDataset(
      input,
      tokenizer,
      { maxLength, overlong: "drop", warn: () => {} }, // counted and reported once below
      field,
      this.warnFn, // load and format notices (identical pairs, invalid UTF-8) are not counted below
    );
    let dropped = resolved.reports.reduce((n, r) => n + (r.stage === "tokenize" ? droppedCount(r) : 0), 0);
    const rowsIn = resolved.tokenized
      ? (resolved.reports.at(-1)?.rowsIn ?? resolved.examples.length)
      : resolved.examples.length;
    let rows = resolved.examples;
    if (maxLength !== null) {
      const fits = (r: TokenizedPreference) =>
        r.promptIds.length + Math.max(r.chosenIds.length, r.rejectedIds.length) <= maxLength;
      const kept = rows.filter(fits);
      dropped += rows.length - kept.length;
      rows = kept;
    }
    this.droppedRows[split] = dropped;
    if (dropped > 0) {
      this.warnFn(
        `RewardTrainer: dropped ${dropped} of ${rowsIn} ${split === "train" ? "training" : "evaluation"} rows longer than maxLength (${maxLength})`,
      );
    }
    if (rows.length === 0) {
      throw new DatasetError(`every row is longer than maxLength (${maxLength}); nothing left to train on`, { field });
    }
    return rows;
  }

  /** rows → {@link RewardTrainerBatch} (collateReward + indices). */
  private collate(rows: Array<{ row: TokenizedPreference; index: number }>): RewardTrainerBatch {
    const batch = collateReward(
      rows.map((r) => r.row),
      { padTokenId: this.padTokenId },
    ) as RewardTrainerBatch;
    batch.rowIndices = rows.map((r) => r.index);
    return batch;
  }

  /** Each micro-batch weighs its number of pairs, so accumulation equals one big batch. */
  protected override batchWeight(batch: RewardTrainerBatch): number {
    return batch.batchSize;
  }

  /** Loss and TRL metrics of one micro-batch (one classifier forward over 2B rows). */
  protected computeLoss(batch: RewardTrainerBatch, _ctx: ComputeLossContext): StepOutput {
    const b = batch.batchSize;
    const t = batch.inputIds[0]!.length;
    const ids = tf.tensor2d(batch.inputIds.flat(), [2 * b, t], "int32");
    const att = tf.tensor2d(batch.attentionMask.flat(), [2 * b, t], "int32");
    const logits = this.classifier.forward({ inputIds: ids, attentionMask: att }).logits;
    const rewards = tf.reshape(logits, [2 * b]);
    const chosen = tf.slice(rewards, [0], [b]);
    const rejected = tf.slice(rewards, [b], [b]);
    const out = rewardLoss(chosen, rejected, {
      margin: batch.margins !== undefined ? tf.tensor1d(batch.margins) : null,
      centerRewardsCoefficient: this.args.centerRewardsCoefficient,
    });
    const numTokens = batch.lengths.reduce((s, l) => s + l, 0);
    return { loss: out.loss, metrics: out.metrics, numTokens };
  }
}
