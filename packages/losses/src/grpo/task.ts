/**
 * The task GRPO and RLOO share on core's generic `Trainer`: each trainer step is one update. Its rollout
 * samples `numGenerations` completions per prompt (each prompt's rows consecutive), scores them with the
 * reward functions, turns the rewards into advantages (the method's estimator: group-normalised for GRPO,
 * leave-one-out for RLOO), shuffles the rows and plans `numIterations` optimizer steps of
 * `gradientAccumulationSteps` micro-batches each. Each micro-batch is one policy forward through the run's
 * `"group-rollout"` loss (`"grpo"` or `"rloo"`).
 * @module
 */
import {
  type CausalLM,
  checkLossKind,
  ConfigError,
  type Loss,
  Rng,
  type RolloutUpdate,
  type StepOutput,
  selectiveLogProbs,
  type TaskContext,
  type TrainingTask,
  tf,
} from "@prefkit/core";
import { chunkColumns, type PPOPromptChunk } from "../ppo/data.js";
import { meanEntropy } from "../ppo/metrics.js";
import type { RolloutSettings } from "../ppo/sampling.js";
import {
  type GeneratedRollout,
  generateRollout,
  optimizationTimeMetrics,
  type RolloutTimings,
  responseLogits,
  rolloutTimeMetrics,
  rowsTensor,
  scoreRows,
} from "../ppo/rollout.js";
import type { PPOTokenIds } from "../ppo/task.js";
import type { ReferenceSource } from "../preference/reference.js";
import { rewardMetrics } from "./advantages.js";
import type { GroupRolloutConfig } from "./config.js";
import type { GroupRolloutInputs } from "./objective.js";
import type { RewardFuncs } from "./reward-funcs.js";

/** What an advantage estimator reads: the rollout, its rewards and the loss mask. */
export interface ScoredCompletions {
  /** The sampled completions (`logprobs` are log π_old; `refLogprobs` present when β ≠ 0). */
  rollout: GeneratedRollout;
  /** Rewards `[B][F]` per reward function, NaN where a function returned `null`. */
  rewards: number[][];
  /** `[B][W]` 1 on the completion tokens the loss counts. */
  mask: number[][];
}

/** What an advantage estimator returns. */
export interface EstimatedAdvantages {
  /** One advantage per completion. */
  advantages: number[];
  /** Share of groups whose rewards have zero std (`frac_reward_zero_std`). */
  fracRewardZeroStd: number;
  /** Update-level metrics of the method (RLOO's `kl`). */
  metrics?: Record<string, number>;
}

/** How a method turns a rollout's rewards into advantages (GRPO: group-normalised; RLOO: leave-one-out). */
export type AdvantageEstimator = (scored: ScoredCompletions) => EstimatedAdvantages;

/** A scored group rollout: what every micro-batch of one update reads from. */
export interface GroupRollout extends GeneratedRollout {
  /** Rewards `[B][F]` per reward function (NaN for `null`). */
  rewards: number[][];
  /** One advantage per completion. */
  advantages: number[];
  /** `[B][W]` loss mask: valid completion tokens, 0 for truncated completions under `maskTruncatedCompletions`. */
  mask: number[][];
  /** Completions that ended without eos (TRL: last token neither eos nor pad). */
  truncated: boolean[];
  /** TRL's metrics of the rollout (`reward`, `rewards/<name>/*`, `completions/*`, …). */
  metrics: Record<string, number>;
}

/** One micro-batch: some rows of an update's rollout. */
export interface GroupMicroBatch {
  /** The rollout it belongs to. */
  rollout: GroupRollout;
  /** Row indices into the rollout. */
  rows: number[];
  /** Loss tokens of the whole optimizer step this micro-batch belongs to (TRL's `num_items_in_batch`). */
  stepTokens: number;
}

/** Seconds of the last update per phase: the rollout's, and the optimizer steps (policy passes and updates). */
export interface GroupUpdateTimings extends RolloutTimings {
  /** Forward + backward of every micro-batch and the optimizer steps. */
  policy: number;
}

/** What a {@link GroupRolloutTask} is built from. */
export interface GroupRolloutTaskOptions {
  /** `"grpo"` or `"rloo"` (the task's name). */
  name: string;
  /** The resolved config. */
  args: GroupRolloutConfig;
  /** The policy (what the optimizer trains). */
  policy: CausalLM;
  /** The frozen reference, `undefined` when β = 0 (no reference pass, no copy). */
  reference: ReferenceSource | undefined;
  /** The run's `"group-rollout"` loss. */
  loss: Loss<GroupRolloutInputs>;
  /** Resolves the reward functions when training or evaluation starts. */
  rewards: () => RewardFuncs;
  /** The method's advantages. */
  estimator: AdvantageEstimator;
  /** Special token ids. */
  tokenIds: PPOTokenIds;
  /** Weight micro-batches by their loss tokens (GRPO's `"dapo"`: one token mean over the optimizer step). */
  weightByTokens: boolean;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: readonly number[]) => (xs.length === 0 ? 0 : sum(xs) / xs.length);

/** TRL's `completions/*` metrics: lengths of all completions, share truncated, lengths of those that ended. */
function completionMetrics(lengths: readonly number[], truncated: readonly boolean[]): Record<string, number> {
  const ended = lengths.filter((_, i) => !truncated[i]);
  const terminated = ended.length > 0 ? ended : [0];
  return {
    "completions/mean_length": mean(lengths),
    "completions/min_length": Math.min(...lengths),
    "completions/max_length": Math.max(...lengths),
    "completions/clipped_ratio": mean(truncated.map(Number)),
    "completions/mean_terminated_length": mean(terminated),
    "completions/min_terminated_length": Math.min(...terminated),
    "completions/max_terminated_length": Math.max(...terminated),
  };
}

/** GRPO and RLOO as a {@link TrainingTask}: group rollouts, the method's advantages and the update plan. */
export class GroupRolloutTask implements TrainingTask<PPOPromptChunk, GroupMicroBatch> {
  /** Task name (`"grpo"` or `"rloo"`). */
  readonly name: string;
  /** The last scored rollout (for inspection and tests). */
  lastRollout: GroupRollout | undefined;
  /** The micro-batches of the last update's first optimizer step. */
  lastMicroBatches: GroupMicroBatch[] | undefined;
  /** Seconds per phase of the last update. */
  lastTimings: GroupUpdateTimings | undefined;
  private funcs: RewardFuncs | undefined;

  /** @param options see {@link GroupRolloutTaskOptions}. */
  constructor(readonly options: GroupRolloutTaskOptions) {
    checkLossKind(options.loss, "group-rollout", "group rollouts");
    this.name = options.name;
  }

  /** The reward functions (resolved when training or evaluation started). */
  get rewardFuncs(): RewardFuncs {
    if (this.funcs === undefined) {
      const funcs = this.options.rewards();
      const weights = this.options.args.rewardWeights;
      if (weights !== null && weights.length !== funcs.names.length) {
        throw new ConfigError(
          `must hold one weight per reward function (${funcs.names.length}: ${funcs.names.join(", ")}), got ${weights.length}`,
          { field: "rewardWeights" },
        );
      }
      this.funcs = funcs;
    }
    return this.funcs;
  }

  /** Resolve the reward functions (names are looked up now, after plugins registered theirs). */
  prepare(): void {
    void this.rewardFuncs;
  }

  /** Sample and score the chunks' completions, estimate the advantages, and plan the update's optimizer steps. */
  async rollout(chunks: PPOPromptChunk[], context: TaskContext): Promise<RolloutUpdate<GroupMicroBatch>> {
    const rolloutStarted = performance.now();
    const a = this.options.args;
    const rollout = await this.sampleAndScore(
      chunks.flatMap((c) => c.promptIds),
      chunkColumns(chunks),
      context.rng,
    );
    const started = performance.now();
    // TRL shuffles the generation batch once, then cuts it into the micro-batches every iteration reuses.
    const order = context.rng.permutation(rollout.advantages.length);
    const slices: number[][] = [];
    for (let i = 0; i < order.length; i += a.perDeviceTrainBatchSize) {
      slices.push(order.slice(i, i + a.perDeviceTrainBatchSize));
    }
    const stepTokens = sum(rollout.mask.map(sum));
    const micro = slices.map((rows) => ({ rollout, rows, stepTokens }));
    return {
      steps: Array.from({ length: a.numIterations }, () => micro),
      metrics: { ...rolloutTimeMetrics(rollout.timings, (started - rolloutStarted) / 1000), ...rollout.metrics },
      numTokens: sum(rollout.attentionMask.map(sum)),
      finish: () => {
        this.lastRollout = rollout;
        this.lastMicroBatches = micro;
        this.lastTimings = { ...rollout.timings, policy: (performance.now() - started) / 1000 };
        return optimizationTimeMetrics(rolloutStarted, started);
      },
    };
  }

  /** Loss and metrics of one micro-batch: a policy forward, then the run's `"group-rollout"` loss. */
  compute(batch: GroupMicroBatch): StepOutput {
    const { rollout, rows } = batch;
    const a = this.options.args;
    const out = this.options.policy.forward({
      inputIds: rowsTensor(rollout.queryResponses, rows, "int32"),
      attentionMask: rowsTensor(rollout.attentionMask, rows, "int32"),
      positionIds: rowsTensor(rollout.positionIds, rows, "int32"),
    });
    const logits = responseLogits(out.logits, rollout.contextLength, rollout.width, a.temperature);
    const mask = rowsTensor(rollout.mask, rows);
    // Zero outside the mask, so a loss may exponentiate differences anywhere (padding holds TRL's fill value).
    const masked = (matrix: number[][]) => tf.mul(rowsTensor(matrix, rows), mask) as tf.Tensor2D;
    const lossOut = this.options.loss.compute({
      logprobs: tf.mul(selectiveLogProbs(logits, rowsTensor(rollout.responses, rows, "int32")), mask) as tf.Tensor2D,
      oldLogprobs: a.numIterations > 1 ? masked(rollout.logprobs) : null,
      refLogprobs: rollout.refLogprobs === undefined ? null : masked(rollout.refLogprobs),
      advantages: tf.tensor1d(rows.map((i) => rollout.advantages[i]!)),
      mask,
    });
    return { ...lossOut, metrics: { ...lossOut.metrics, entropy: meanEntropy(logits, mask) } };
  }

  /** 1, or under `weightByTokens` the micro-batch's loss tokens (1 each when the whole step has none). */
  batchWeight(batch: GroupMicroBatch): number {
    if (!this.options.weightByTokens || batch.stepTokens === 0) return 1;
    return sum(batch.rows.map((i) => sum(batch.rollout.mask[i]!)));
  }

  /**
   * The rollout metrics on held-out prompts (logged as `eval_reward`, `eval_rewards/<name>/mean`,
   * `eval_completions/*`, …): `numGenerations` completions per prompt, sampled from an RNG seeded with `seed`
   * (so every evaluation of the same policy draws the same completions and the training RNG is untouched).
   */
  async evaluateBatch(chunk: PPOPromptChunk): Promise<Record<string, number>> {
    const rollout = await this.sampleAndScore(chunk.promptIds, chunkColumns([chunk]), new Rng(this.options.args.seed));
    return rollout.metrics;
  }

  private async sampleAndScore(
    promptIds: number[][],
    columns: Record<string, unknown[]>,
    rng: Rng,
  ): Promise<GroupRollout> {
    const a = this.options.args;
    const ids = this.options.tokenIds;
    const settings: RolloutSettings = {
      responseLength: a.maxCompletionLength,
      temperature: a.temperature,
      topK: a.topK,
      topP: a.topP,
      localRolloutForwardBatchSize: a.perDeviceTrainBatchSize,
      missingEosPenalty: null,
      stopTokenId: null,
      eosTokenId: ids.eos,
      padTokenId: ids.pad,
    };
    const generated = await generateRollout(
      promptIds,
      { model: { policy: this.options.policy }, reference: this.options.reference, rng },
      settings,
    );
    const truncated = generated.responses.map((r, i) => {
      const last = r[generated.generatedLengths[i]! - 1];
      return last !== ids.eos && last !== ids.pad;
    });
    const drop = (i: number) => a.maskTruncatedCompletions && truncated[i]!;
    const mask = generated.validLengths.map((n, i) =>
      Array.from({ length: generated.width }, (_, t) => (t < n && !drop(i) ? 1 : 0)),
    );
    const started = performance.now();
    const funcs = this.rewardFuncs;
    const rewards = await funcs.score({ ...scoreRows(generated, ids.pad), columns });
    const timings = { ...generated.timings, scoring: (performance.now() - started) / 1000 };
    const estimated = this.options.estimator({ rollout: generated, rewards, mask });
    return {
      ...generated,
      timings,
      rewards,
      advantages: estimated.advantages,
      mask,
      truncated,
      metrics: {
        ...rewardMetrics(rewards, funcs.names),
        frac_reward_zero_std: estimated.fracRewardZeroStd,
        ...completionMetrics(generated.generatedLengths, truncated),
        ...estimated.metrics,
      },
    };
  }
}
