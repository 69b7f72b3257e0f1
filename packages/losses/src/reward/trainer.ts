/**
 * `RewardTrainer`: TRL's reward trainer as a façade over core's generic `Trainer` (see `rewardRun`).
 * @module
 */
import { composedParts, type SequenceClassifier, type TokenizedPreference, Trainer } from "@prefkit/core";
import type { RewardConfig } from "./config.js";
import { type RewardDroppedRows, type RewardRun, type RewardTrainerOptions, rewardRun } from "./method.js";
import type { PairScoreTask, RewardTrainerBatch } from "./task.js";

/**
 * Reward-model training (TRL's `RewardTrainer`): each micro-batch is one forward of the classifier over the
 * B chosen and B rejected sequences (right-padded, masks from lengths), the rewards are the scores at each
 * row's last real token, and the loss is `rewardLoss`: −log σ(r_c − r_r − margin) (margin from the dataset's
 * optional `margin` column) plus `centerRewardsCoefficient` · mean((r_c + r_r)²).
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
export class RewardTrainer extends Trainer<RewardTrainerBatch, RewardConfig> {
  private readonly run: RewardRun;

  /**
   * Compose the run; data is tokenised when {@link RewardTrainer.train} or {@link RewardTrainer.evaluate} runs.
   * @throws ConfigError for a bad config field or a model with `numLabels` ≠ 1.
   */
  constructor(options: RewardTrainerOptions) {
    const run = rewardRun(options);
    super(composedParts(run.definition, options));
    this.run = run;
  }

  /** The reward model being trained (after plugins, e.g. LoRA, wrapped it). */
  get classifier(): SequenceClassifier {
    return (this.task as PairScoreTask).classifier;
  }

  /** Over-long rows dropped per split (filled when the data is prepared). */
  get droppedRows(): RewardDroppedRows {
    return this.run.droppedRows;
  }

  /** Tokenised training pairs (after training started). */
  get trainRows(): TokenizedPreference[] {
    return this.run.sources()?.train.rows ?? [];
  }

  /** Tokenised evaluation pairs, if any. */
  get evalRows(): TokenizedPreference[] | undefined {
    return this.run.sources()?.eval?.rows;
  }

  /** Free the optimizer state (not the model). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
