/**
 * How a PPO run is composed: TRL's `PPOConfig` defaults, the prompt sources, the value function, the
 * reference, the reward (resolved from the run's reward-function registry), the `"rollout"` loss from the
 * loss registry, and the PPO task; the optimizer trains the policy + value pair, and the run counts its
 * updates from `totalEpisodes`.
 * @module
 */
import type { CausalLM, Loss, RunDefinition, SequenceClassifier, TokenizerLike } from "@prefkit/core";
import { commonRunParts, type TrainerCommonOptions } from "../common/options.js";
import { resolveReference } from "../preference/reference.js";
import { type PPOConfig, type PPOConfigInput, resolvePPOConfig } from "./config.js";
import { type PPOPromptChunk, type PromptChunkSource, promptSources } from "./data.js";
import type { RolloutInputs } from "./losses.js";
import type { PromptDatasetInput } from "./prompts.js";
import { type PPORewardSource, rewardFunctionRegistryOf } from "./reward-function.js";
import { checkRewardSource, createScorer } from "./scoring.js";
import { type PPOMicroBatch, PPOTask, ppoTokenIds } from "./task.js";
import { PolicyAndValueModel, selectValueFunction } from "./value.js";

/** What the `PPOTrainer` (and `createTrainer("ppo", …)`) takes, with TRL's parameter names in camelCase. */
export interface PPOTrainerOptions extends TrainerCommonOptions {
  /** The policy to train (TRL `model`). Any `CausalLM`; one with `generate()` samples with the KV cache. */
  model: CausalLM;
  /**
   * The frozen reference. Default as the `DPOTrainer`: the policy with adapters off when it implements
   * `AdapterToggle` (LoRA), else a `frozenCopy()` of it taken when the trainer is built.
   */
  refModel?: CausalLM;
  /**
   * The reward: a `SequenceClassifier` with one label (scored at the last real token of the truncated
   * sequence), a `RewardFunction`, or the name of one registered with `registerRewardFunction` or a
   * `rewardFunctionPlugin` (looked up when training or evaluation starts).
   */
  rewardModel: PPORewardSource;
  /**
   * The value model for `valueHead: "model"` (trained). Default: a trainable copy of `rewardModel`, as TRL
   * (needs a reward model with `copy()`, e.g. `PreTrainedModelForSequenceClassification`).
   */
  valueModel?: SequenceClassifier;
  /** The config; missing fields take TRL's defaults (`PPO_DEFAULTS`). */
  args?: PPOConfigInput;
  /** Training prompts: tokenised, raw (strings or messages), or a file path. */
  trainDataset: PromptDatasetInput;
  /** Held-out prompts for `evaluate()` (`eval_objective/scores`, `eval_objective/kl`, …), same forms. */
  evalDataset?: PromptDatasetInput;
  /**
   * The reward model's tokenizer when it differs from the policy's: the decoded prompt+response is then
   * re-tokenised with it for scoring (said once in the logs).
   */
  rewardProcessingClass?: TokenizerLike;
}

/** The parts of a PPO run that its façade exposes. */
export interface PPORun {
  /** The run definition for the composition root. */
  definition: RunDefinition<PPOPromptChunk, PPOConfig, PPOMicroBatch>;
  /** A value model the run made (a copy of the reward model), which the run must dispose. */
  ownedValueModel: SequenceClassifier | undefined;
  /** The prompt sources (built when the run is composed). */
  sources(): { train: PromptChunkSource; eval?: PromptChunkSource } | undefined;
}

/** Compose-ready description of a PPO run (see the module comment). */
export function ppoRun(options: PPOTrainerOptions): PPORun {
  const args = resolvePPOConfig(options.args);
  checkRewardSource(options.rewardModel);
  const value = selectValueFunction({
    valueHead: args.valueHead,
    policy: options.model,
    rewardModel: options.rewardModel,
    valueModel: options.valueModel,
    seed: args.seed,
  });
  const common = commonRunParts<PPOConfig>(options);
  const batchSize = args.perDeviceTrainBatchSize * args.gradientAccumulationSteps * args.numMiniBatches;
  let sources: ReturnType<PPORun["sources"]>;
  const definition: RunDefinition<PPOPromptChunk, PPOConfig, PPOMicroBatch> = {
    method: "ppo",
    args,
    model: options.model,
    ...(options.refModel !== undefined ? { referenceModel: options.refModel } : {}),
    ...common,
    loss: (run) => run.registry.create<PPOConfig, RolloutInputs>(args.lossType, args),
    task: (run, loss) =>
      new PPOTask({
        args,
        model: new PolicyAndValueModel(run.model, value.source),
        reference: resolveReference(run.model, run.referenceModel, false),
        loss: loss as Loss<RolloutInputs>,
        scorer: () =>
          createScorer({
            reward: options.rewardModel,
            registry: rewardFunctionRegistryOf(run.container),
            tokenizer: run.tokenizer,
            rewardTokenizer: options.rewardProcessingClass,
            forwardBatchSize: args.localRolloutForwardBatchSize,
            warn: common.warn!,
          }),
        tokenIds: ppoTokenIds(args, run.tokenizer, run.model),
      }),
    data: (run) => {
      sources = promptSources({
        trainDataset: options.trainDataset,
        evalDataset: options.evalDataset,
        tokenizer: run.tokenizer,
        chunkSize: args.perDeviceTrainBatchSize * args.numMiniBatches,
        chunksPerUpdate: args.gradientAccumulationSteps,
        seed: args.seed,
      });
      return sources;
    },
    trainedModel: (_run, task) => (task as PPOTask).model,
    // TRL: `maxSteps` updates, else ⌈totalEpisodes / batchSize⌉ with totalEpisodes = numTrainEpochs × prompts.
    totalSteps: () => {
      if (args.maxSteps > 0) return undefined;
      const episodes = args.totalEpisodes ?? Math.ceil(args.numTrainEpochs * (sources?.train.rows.length ?? 0));
      return Math.ceil(episodes / batchSize);
    },
  };
  return { definition, ownedValueModel: value.owned, sources: () => sources };
}
