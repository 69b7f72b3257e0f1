/**
 * `KTOTrainer`: TRL's KTO trainer as a façade over core's generic `Trainer` (see `ktoRun`).
 * @module
 */
import { composedParts, Trainer } from "@prefkit/core";
import type { ReferenceSource } from "../preference/reference.js";
import type { KTOConfig } from "./config.js";
import { type KTORun, type KTOTrainerOptions, ktoRun } from "./method.js";
import type { KTOBatch, KTORow, UnpairedTask } from "./task.js";

/**
 * KTO training on unpaired feedback (TRL's `KTOTrainer`, Ethayarajh et al. 2024): each row is a completion
 * labelled desirable or undesirable; the loss compares its log-ratio to the reference with the batch KL
 * estimate from mismatched (prompt, neighbour's completion) pairs. Paired preference data is unpaired first
 * (each pair → one desirable and one undesirable row).
 *
 * Logged metrics (TRL names): `loss`, `grad_norm`, `learning_rate`, `epoch`, `num_tokens`, `kl`,
 * `rewards/chosen`, `rewards/rejected`, `rewards/margins`, `logps/chosen`, `logps/rejected`, `logits/chosen`,
 * `logits/rejected`, `entropy`; evaluation prefixes them with `eval_`.
 */
export class KTOTrainer extends Trainer<KTOBatch, KTOConfig> {
  private readonly run: KTORun;

  /** Compose the run; data is tokenised when training or evaluation starts. */
  constructor(options: KTOTrainerOptions) {
    const run = ktoRun(options);
    super(composedParts(run.definition, options));
    this.run = run;
  }

  /** The reference the run uses. */
  get reference(): ReferenceSource {
    return (this.task as UnpairedTask).reference;
  }

  /** Tokenised training rows with their KL completions (after training started). */
  get trainRows(): KTORow[] {
    const train = this.run.train();
    return train?.ready ? train.rows : [];
  }

  /** Free what the trainer owns: the optimizer state and a frozen reference copy (not the policy). */
  dispose(): void {
    this.optimizer.dispose();
    this.reference.owned?.dispose();
  }
}
