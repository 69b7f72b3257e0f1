/**
 * `PPOTrainer`: TRL's PPO trainer ("PPOv2") as a façade over core's generic `Trainer` (see `ppoRun`).
 * @module
 */
import { composedParts, Trainer, taskStateKey } from "@prefkit/core";
import type { ReferenceSource } from "../preference/reference.js";
import type { PPOConfig } from "./config.js";
import type { PPOPromptChunk } from "./data.js";
import type { KLController } from "./kl.js";
import type { PPOUpdateStats } from "./metrics.js";
import { type PPORun, type PPOTrainerOptions, ppoRun } from "./method.js";
import type { TokenizedPrompt } from "./prompts.js";
import type { AdvantageResult } from "./rewards.js";
import type { Rollout } from "./rollout.js";
import type { PPOMicroBatch, PPOTask } from "./task.js";
import type { PolicyAndValueModel } from "./value.js";

/** `state.statefulCallbacks` key of the KL controller's state (the PPO task's checkpointed state). */
export const PPO_KL_CONTROLLER_KEY = taskStateKey({ name: "ppo" });

/**
 * PPO with a KL penalty (TRL's `PPOTrainer`, "PPOv2"). Each trainer step is one update:
 * 1. sample `responseLength` tokens per prompt with the KV-cache generator (temperature, top_k 0, top_p 1),
 *    keeping log π_old = log softmax(logits / (T + 1e-7));
 * 2. reference log-probs (same scaling), values, truncation at `stopTokenId` (or eos with `stopToken: "eos"`);
 * 3. score the truncated sequence (reward model at its last real token, or a reward function), minus
 *    `missingEosPenalty` when no eos was produced;
 * 4. per-token reward −β·KL (`k1`/`k3`) plus the score, GAE (`gamma`, `lam`), whitened advantages;
 * 5. `numPpoEpochs` × `numMiniBatches` optimizer steps of the `"ppo"` loss (clipped policy loss + `vfCoef` ×
 *    clipped value loss), each mini-batch accumulated over `gradientAccumulationSteps` micro-batches by the
 *    generic trainer (so gradient hooks such as AMP's loss scaler see every one).
 *
 * β is `klCoef` (fixed) or the adaptive controller's (`adaptiveKl`). The value function is a separate value
 * model or a head on the policy (`valueHead`). Logged metrics (TRL names): `objective/kl`,
 * `objective/entropy`, `objective/non_score_reward`, `objective/rlhf_reward`, `objective/scores`,
 * `objective/kl_coef`, `policy/approxkl_avg`, `policy/clipfrac_avg`, `policy/entropy_avg`, `loss/policy_avg`,
 * `loss/value_avg`, `val/clipfrac_avg`, `val/ratio`, `val/ratio_var`, `val/num_eos_tokens`, `lr`, `episode`,
 * `eps`, plus the loop's `loss`, `grad_norm`, `learning_rate`, `num_tokens`, `epoch`. `evaluate()` decodes
 * the `evalDataset` prompts and logs `eval_objective/scores`, `eval_objective/kl`,
 * `eval_objective/non_score_reward` and `eval_objective/rlhf_reward`.
 *
 * Checkpoints hold the policy, the value weights (`value_head.safetensors` or `value_model.safetensors`), the
 * optimizer, the KL controller (in `trainer_state.json`) and the RNG that drives sampling and mini-batch
 * order, so a resumed run continues exactly.
 */
export class PPOTrainer extends Trainer<PPOPromptChunk, PPOConfig, PPOMicroBatch> {
  private readonly run: PPORun;

  /**
   * Compose the run; prompts are tokenised and the reward resolved when {@link PPOTrainer.train} or
   * {@link PPOTrainer.evaluate} runs.
   * @throws ConfigError for a bad config field, a reward model with `numLabels` ≠ 1, or no value-model source.
   */
  constructor(options: PPOTrainerOptions) {
    const run = ppoRun(options);
    super(composedParts(run.definition, options));
    this.run = run;
  }

  /** The PPO task of the run (rollouts, KL controller, last update). */
  get ppoTask(): PPOTask {
    return this.task as PPOTask;
  }

  /** The policy + value model the optimizer trains. */
  get policyAndValue(): PolicyAndValueModel {
    return this.ppoTask.model;
  }

  /** The reference the run uses. */
  get reference(): ReferenceSource {
    return this.ppoTask.options.reference;
  }

  /** The KL coefficient controller (fixed or adaptive). */
  get klController(): KLController {
    return this.ppoTask.klController;
  }

  /** Prompts per update: `perDeviceTrainBatchSize × gradientAccumulationSteps × numMiniBatches` (TRL `batch_size`). */
  get batchSize(): number {
    return this.ppoTask.batchSize;
  }

  /** Tokenised training prompts (after training or evaluation started). */
  get trainRows(): TokenizedPrompt[] {
    return this.run.sources()?.train.rows ?? [];
  }

  /** Tokenised evaluation prompts, if any (after evaluation started). */
  get evalRows(): TokenizedPrompt[] | undefined {
    return this.run.sources()?.eval?.rows;
  }

  /** The last rollout (for inspection and tests). */
  get lastRollout(): Rollout | undefined {
    return this.ppoTask.lastRollout;
  }

  /** The training targets of the last rollout. */
  get lastAdvantages(): AdvantageResult | undefined {
    return this.ppoTask.lastAdvantages;
  }

  /** Per-micro-batch statistics of the last update. */
  get lastUpdateStats(): PPOUpdateStats | undefined {
    return this.ppoTask.lastUpdateStats;
  }

  /** Write the trained policy (without the value function) in HF layout, as TRL's `save_model`. */
  async saveModel(dir: string): Promise<void> {
    await this.policyAndValue.policy.savePretrained(dir);
  }

  /** Free what the trainer owns: optimizer state, the value head or value-model copy, a frozen reference copy. */
  dispose(): void {
    this.optimizer.dispose();
    this.policyAndValue.dispose();
    this.run.ownedValueModel?.dispose();
    this.reference.owned?.dispose();
  }
}

export type { PPOTrainerOptions };
