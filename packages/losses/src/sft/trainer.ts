/**
 * `SFTTrainer`: TRL's SFT trainer as a façade over core's generic `Trainer` (see `sftRun` for the parts).
 * @module
 */
import { composedParts, type TokenizedCompletion, Trainer } from "@prefkit/core";
import type { SFTConfig } from "./config.js";
import { type SFTRun, type SFTTrainerOptions, sftRun } from "./method.js";
import type { SFTTrainerBatch } from "./task.js";

/**
 * Supervised fine-tuning (TRL's `SFTTrainer`): token-level mean cross-entropy of the next token over the
 * loss tokens of each batch: every real token for `text` / `messages` data, only completion tokens for
 * prompt-completion data with `completionOnlyLoss` (TRL's default). Micro-batches weigh their loss tokens,
 * so gradient accumulation equals one big batch.
 *
 * Logged metrics (TRL names): `loss`, `grad_norm`, `learning_rate`, `epoch`, `num_tokens`,
 * `mean_token_accuracy`, `entropy`; evaluation prefixes them with `eval_`.
 */
export class SFTTrainer extends Trainer<SFTTrainerBatch, SFTConfig> {
  private readonly run: SFTRun;

  /** Compose the run; data is tokenised when {@link SFTTrainer.train} or {@link SFTTrainer.evaluate} first runs. */
  constructor(options: SFTTrainerOptions) {
    const run = sftRun(options);
    super(composedParts(run.definition, options));
    this.run = run;
  }

  /** Tokenised training examples (after training started). */
  get trainRows(): TokenizedCompletion[] {
    const train = this.run.train();
    return train?.ready ? train.rows : [];
  }

  /** Whether completion-only loss is in effect (resolved when the training data is loaded). */
  get completionOnly(): boolean {
    return this.run.completionOnly();
  }

  /** Free the optimizer state (the model stays the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
