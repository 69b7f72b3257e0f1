/**
 * `DPOTrainer`: TRL's DPO trainer as a façade over core's generic `Trainer` (see `dpoRun` for the parts).
 * @module
 */
import { ConfigError, composedParts, type TokenizedPreference, Trainer } from "@prefkit/core";
import type { RefLogProbs } from "../preference/reference.js";
import type { PreferenceBatch, PreferenceTask } from "../preference/task.js";
import type { DPOConfig } from "./config.js";
import type { Ln2WarningState } from "./ln2-warning.js";
import { type DPORun, type DPOTrainerOptions, dpoRun } from "./method.js";

/**
 * DPO training (TRL's `DPOTrainer`): each micro-batch is one fused policy forward over chosen and rejected
 * concatenated, the reference log-probs come from the reference run without gradients (or from the
 * precomputed cache), and the loss is looked up by `lossType` in the run's loss registry, so a user's
 * registered loss trains exactly like `"sigmoid"`; several types are summed with `lossWeights`.
 *
 * Logged metrics (TRL names): `loss`, `grad_norm`, `learning_rate`, `epoch`, `num_tokens`,
 * `rewards/chosen`, `rewards/rejected`, `rewards/accuracies`, `rewards/margins`, `logps/chosen`,
 * `logps/rejected`, `logits/chosen`, `logits/rejected`, `mean_token_accuracy`, `entropy`, plus any extra
 * metric a user loss returns; evaluation prefixes them with `eval_`.
 *
 * ```ts
 * const trainer = new DPOTrainer({ model, args: { beta: 0.1, maxSteps: 20, outputDir }, trainDataset, processingClass: tok });
 * await trainer.train();
 * ```
 */
export class DPOTrainer extends Trainer<PreferenceBatch, DPOConfig> {
  private readonly run: DPORun;

  /** Compose the run; nothing heavy happens until {@link DPOTrainer.train} or {@link DPOTrainer.evaluate}. */
  constructor(options: DPOTrainerOptions) {
    const run = dpoRun(options);
    super(composedParts(run.definition, options));
    this.run = run;
  }

  /** The preference task of the run (reference, loss, cache). */
  get preferenceTask(): PreferenceTask {
    return this.task as PreferenceTask;
  }

  /** The reference the run uses (`undefined` for a reference-free loss). */
  get reference() {
    return this.preferenceTask.options.reference;
  }

  /** Tokenised training pairs (after training or evaluation started). */
  get trainRows(): TokenizedPreference[] {
    return this.run.sources()?.train.rows ?? [];
  }

  /** Tokenised evaluation pairs, if any (after training or evaluation started). */
  get evalRows(): TokenizedPreference[] | undefined {
    return this.run.sources()?.eval?.rows;
  }

  /** The ln 2 watch record. */
  get ln2Warning(): Ln2WarningState {
    return this.run.ln2.record;
  }

  /**
   * Compute (or load from the cache) the reference log-probs of the train and eval sets now, as TRL's
   * `precompute_ref_log_probs`. Returns the training set's values by row.
   * @throws ConfigError when the reference would come from an already-trained policy, or precomputing is off.
   */
  async precomputeRefLogProbs(): Promise<RefLogProbs> {
    await this.prepare();
    await this.task.prepare?.(this.taskContext());
    const values = this.preferenceTask.options.refCache?.get("train");
    if (values === undefined) {
      throw new ConfigError("set args.precomputeRefLogProbs to cache reference log-probs", {
        field: "precomputeRefLogProbs",
      });
    }
    return values;
  }

  /** Free what the trainer owns: the optimizer state and a frozen reference copy it made (not the policy). */
  dispose(): void {
    this.optimizer.dispose();
    this.reference?.owned?.dispose();
  }
}

export type { DPOTrainerOptions };
