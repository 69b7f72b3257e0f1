/**
 * How a GRPO (or RLOO) run is composed: TRL's config defaults, the prompt sources (each prompt repeated
 * `numGenerations` times), the reference only when β ≠ 0, the reward functions (resolved from the run's
 * registry when training starts), the `"group-rollout"` loss from the loss registry, and the task.
 * @module
 */
import type { CausalLM, Loss, RunDefinition, TokenizerLike } from "@prefkit/core";
import { commonRunParts, type TrainerCommonOptions } from "../common/options.js";
import { type PPOPromptChunk, type PromptChunkSource, promptSources } from "../ppo/data.js";
import type { PromptDatasetInput } from "../ppo/prompts.js";
import { ppoTokenIds } from "../ppo/task.js";
import { resolveReference } from "../preference/reference.js";
import { groupAdvantages } from "./advantages.js";
import { type GRPOConfig, type GroupRolloutConfig, isGRPOAggregation, resolveGRPOConfig } from "./config.js";
import type { GroupRolloutInputs } from "./objective.js";
import { type RewardFuncsInput, resolveRewardFuncs } from "./reward-funcs.js";
import { type AdvantageEstimator, type GroupMicroBatch, GroupRolloutTask } from "./task.js";

/** What the `GRPOTrainer` and `RLOOTrainer` take besides their config (TRL's parameter names in camelCase). */
export interface GroupRolloutTrainerOptions extends TrainerCommonOptions {
  /** The policy to train. Any `CausalLM`; one with `generate()` samples with the KV cache (and top-k/top-p). */
  model: CausalLM;
  /**
   * The frozen reference, used only when β ≠ 0. Default as the `DPOTrainer`: the policy with adapters off when
   * it implements `AdapterToggle` (LoRA), else a `frozenCopy()` taken when the trainer is built. With β = 0
   * no reference is loaded at all.
   */
  refModel?: CausalLM;
  /**
   * The rewards (TRL `reward_funcs`): functions, reward models (`SequenceClassifier`, one label) or registered
   * names, alone, in a list, or as a record name → function. Default: every function a `rewardFunctionPlugin`
   * provided to this run.
   */
  rewardFuncs?: RewardFuncsInput;
  /** Training prompts: `{ prompt }` rows (strings or messages, plus any columns reward functions read), `{ inputIds }`, or a file path. */
  trainDataset: PromptDatasetInput;
  /** Held-out prompts for `evaluate()` (`eval_reward`, `eval_rewards/<name>/mean`, …), same forms. */
  evalDataset?: PromptDatasetInput;
  /** Reward models' tokenizer when it differs from the policy's (the text is re-tokenised for them). */
  rewardProcessingClass?: TokenizerLike;
}

/** What the `GRPOTrainer` (and `createTrainer("grpo", …)`) takes. */
export interface GRPOTrainerOptions extends GroupRolloutTrainerOptions {
  /** The config; missing fields take TRL's defaults (`GRPO_DEFAULTS`). */
  args?: Partial<GRPOConfig>;
}

/** The parts of a GRPO or RLOO run that its façade exposes. */
export interface GroupRolloutRun<TArgs extends GroupRolloutConfig> {
  /** The run definition for the composition root. */
  definition: RunDefinition<PPOPromptChunk, TArgs, GroupMicroBatch>;
  /** The prompt sources (built when the run is composed). */
  sources(): { train: PromptChunkSource; eval?: PromptChunkSource } | undefined;
}

/** What distinguishes GRPO from RLOO in a {@link groupRolloutRun}. */
export interface GroupRolloutMethod {
  /** `"grpo"` or `"rloo"`. */
  name: string;
  /** The registry name of the run's loss. */
  lossName: string;
  /** The method's advantages. */
  estimator: AdvantageEstimator;
  /** Weight micro-batches by loss tokens (GRPO's `"dapo"`). */
  weightByTokens: boolean;
}

/** Compose-ready description of a GRPO or RLOO run (see the module comment). */
export function groupRolloutRun<TArgs extends GroupRolloutConfig>(
  options: GroupRolloutTrainerOptions,
  args: TArgs,
  method: GroupRolloutMethod,
): GroupRolloutRun<TArgs> {
  const common = commonRunParts<TArgs>(options);
  if (args.beta === 0 && options.refModel !== undefined) {
    common.warn!(`${method.name}: beta is 0, so refModel is not used (no reference pass)`);
  }
  let sources: ReturnType<GroupRolloutRun<TArgs>["sources"]>;
  const definition: RunDefinition<PPOPromptChunk, TArgs, GroupMicroBatch> = {
    method: method.name,
    args,
    model: options.model,
    ...(options.refModel !== undefined && args.beta !== 0 ? { referenceModel: options.refModel } : {}),
    ...common,
    loss: (run) => run.registry.create<TArgs, GroupRolloutInputs>(method.lossName, args),
    task: (run, loss) =>
      new GroupRolloutTask({
        name: method.name,
        args,
        policy: run.model,
        // β = 0: no reference at all (TRL loads none): no frozen copy, no reference pass.
        reference: args.beta === 0 ? undefined : resolveReference(run.model, run.referenceModel, false),
        loss: loss as Loss<GroupRolloutInputs>,
        rewards: () =>
          resolveRewardFuncs({
            rewardFuncs: options.rewardFuncs,
            container: run.container,
            tokenizer: run.tokenizer,
            rewardTokenizer: options.rewardProcessingClass,
            forwardBatchSize: args.perDeviceTrainBatchSize,
            warn: common.warn!,
          }),
        estimator: method.estimator,
        tokenIds: ppoTokenIds({}, run.tokenizer, run.model),
        weightByTokens: method.weightByTokens,
      }),
    data: (run) => {
      sources = promptSources({
        trainDataset: options.trainDataset,
        evalDataset: options.evalDataset,
        tokenizer: run.tokenizer,
        chunkSize: args.perDeviceTrainBatchSize,
        chunksPerUpdate: args.gradientAccumulationSteps,
        seed: args.seed,
        repeats: args.numGenerations,
      });
      return sources;
    },
  };
  return { definition, sources: () => sources };
}

/** Compose-ready description of a GRPO run: group-normalised advantages, the `"grpo"` loss (or a user's). */
export function grpoRun(options: GRPOTrainerOptions): GroupRolloutRun<GRPOConfig> {
  const args = resolveGRPOConfig(options.args);
  return groupRolloutRun(options, args, {
    name: "grpo",
    lossName: isGRPOAggregation(args.lossType) ? "grpo" : args.lossType,
    estimator: ({ rewards }) => {
      const out = groupAdvantages(rewards, args.numGenerations, {
        scaleRewards: args.scaleRewards,
        rewardWeights: args.rewardWeights,
        multiObjectiveAggregation: args.multiObjectiveAggregation,
      });
      return { advantages: out.advantages, fracRewardZeroStd: out.fracRewardZeroStd };
    },
    weightByTokens: args.lossType === "dapo",
  });
}
