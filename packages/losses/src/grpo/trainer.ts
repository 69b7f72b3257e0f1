/**
 * `GRPOTrainer`: TRL's GRPO trainer as a façade over core's generic `Trainer` (see `grpoRun`), and the
 * façade base it shares with the `RLOOTrainer`.
 * @module
 */
import { type ComposeOptions, composedParts, Trainer } from "@prefkit/core";
import type { PPOPromptChunk } from "../ppo/data.js";
import type { TokenizedPrompt } from "../ppo/prompts.js";
import type { ReferenceSource } from "../preference/reference.js";
import type { GRPOConfig, GroupRolloutConfig } from "./config.js";
import { type GroupRolloutRun, type GRPOTrainerOptions, grpoRun } from "./method.js";
import type { GroupMicroBatch, GroupRollout, GroupRolloutTask, GroupUpdateTimings } from "./task.js";

/** The façade of a group-rollout run (GRPO, RLOO): the composed generic trainer plus accessors. */
export class GroupRolloutTrainer<TArgs extends GroupRolloutConfig> extends Trainer<
  PPOPromptChunk,
  TArgs,
  GroupMicroBatch
> {
  private readonly run: GroupRolloutRun<TArgs>;

  /** Compose `run`; prompts are tokenised and reward functions resolved when training or evaluation starts. */
  protected constructor(run: GroupRolloutRun<TArgs>, options: ComposeOptions) {
    super(composedParts(run.definition, options));
    this.run = run;
  }

  /** The run's task (rollouts, advantages, the last update). */
  get groupTask(): GroupRolloutTask {
    return this.task as GroupRolloutTask;
  }

  /** The reference, or `undefined` when β = 0 (none is loaded). */
  get reference(): ReferenceSource | undefined {
    return this.groupTask.options.reference;
  }

  /** The reward functions' names (the `rewards/<name>/*` metrics), once training or evaluation started. */
  get rewardFunctionNames(): readonly string[] {
    return this.groupTask.rewardFuncs.names;
  }

  /** The last scored rollout: completions, rewards per function, advantages, mask. */
  get lastRollout(): GroupRollout | undefined {
    return this.groupTask.lastRollout;
  }

  /** Seconds per phase of the last update (generation, reference, scoring, policy passes). */
  get lastTimings(): GroupUpdateTimings | undefined {
    return this.groupTask.lastTimings;
  }

  /** Tokenised training prompts (after training or evaluation started). */
  get trainRows(): TokenizedPrompt[] {
    return this.run.sources()?.train.rows ?? [];
  }

  /** Write the trained policy in HF layout, as TRL's `save_model`. */
  async saveModel(dir: string): Promise<void> {
    await this.model.savePretrained(dir);
  }

  /** Free what the trainer owns: optimizer state and a frozen reference copy. */
  dispose(): void {
    this.optimizer.dispose();
    this.reference?.owned?.dispose();
  }
}

/**
 * GRPO, Group Relative Policy Optimization (TRL's `GRPOTrainer`, v0.29.1 semantics). Each trainer step is one
 * update:
 * 1. sample `numGenerations` completions of at most `maxCompletionLength` tokens for each of
 *    `perDeviceTrainBatchSize × gradientAccumulationSteps / numGenerations` prompts (`temperature`, `topK`,
 *    `topP`), keeping log π_old = log softmax(logits / T);
 * 2. when β ≠ 0, reference log-probs (β = 0 loads no reference model at all);
 * 3. score every completion with every reward function; R = weighted sum (`rewardWeights`, `null` skipped);
 * 4. group advantages: A = (R − group mean) / (std + 1e-4), std per `scaleRewards`;
 * 5. shuffle, cut into micro-batches of `perDeviceTrainBatchSize`, and take `numIterations` optimizer steps of
 *    `gradientAccumulationSteps` micro-batches through the `"grpo"` loss: the clipped per-token objective
 *    (`epsilon`, `epsilonHigh`) plus β·k3 KL, aggregated per `lossType`.
 *
 * Logged metrics (TRL names): `reward`, `reward_std`, `rewards/<name>/mean`, `rewards/<name>/std`,
 * `frac_reward_zero_std`, `completions/mean_length` (and min/max, terminated lengths), `completions/clipped_ratio`,
 * `kl` (β ≠ 0), `entropy`, `clip_ratio/low_mean`, `clip_ratio/high_mean`, `clip_ratio/region_mean`, plus the
 * loop's `loss`, `grad_norm`, `learning_rate`, `num_tokens`.
 */
export class GRPOTrainer extends GroupRolloutTrainer<GRPOConfig> {
  /** @throws ConfigError for a bad config field (e.g. `numGenerations` not dividing an update's completions). */
  constructor(options: GRPOTrainerOptions) {
    super(grpoRun(options), options);
  }
}

export type { GRPOTrainerOptions };
