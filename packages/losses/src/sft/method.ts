/**
 * How an SFT run is composed: TRL's `SFTConfig` defaults, completion data, the `"completion"` loss from the
 * registry (`"nll"`), and the completion task.
 * @module
 */
import type { CausalLM, CompletionInputs, Loss, RunDefinition, TokenizedCompletion } from "@prefkit/core";
import { type CompletionDatasetInput, resolveCompletionDataset } from "../common/datasets.js";
import { type LazyBatchSource, trainAndEvalSources } from "../common/lazy-source.js";
import { commonRunParts, resolvePadTokenId, type TrainerCommonOptions } from "../common/options.js";
import { resolveSFTConfig, type SFTConfig } from "./config.js";
import { CompletionTask, collateCompletions, type SFTTrainerBatch } from "./task.js";

/** What the `SFTTrainer` (and `createTrainer("sft", …)`) takes (TRL's parameter names in camelCase). */
export interface SFTTrainerOptions extends TrainerCommonOptions {
  /** The model to fine-tune. */
  model: CausalLM;
  /** The config; missing fields take TRL's defaults (`SFT_DEFAULTS`). */
  args?: Partial<SFTConfig>;
  /** Training data: tokenised, raw rows (`text`, `messages`, `prompt`/`completion`), or a file path. */
  trainDataset: CompletionDatasetInput;
  /** Evaluation data, same forms. */
  evalDataset?: CompletionDatasetInput;
}

/** The parts of an SFT run that its façade exposes. */
export interface SFTRun {
  /** The run definition for the composition root. */
  definition: RunDefinition<SFTTrainerBatch, SFTConfig>;
  /** The training source (rows once loaded). */
  train(): LazyBatchSource<TokenizedCompletion, SFTTrainerBatch> | undefined;
  /** Whether completion-only loss is in effect (known once the training data is loaded). */
  completionOnly(): boolean;
}

/** Compose-ready description of an SFT run. */
export function sftRun(options: SFTTrainerOptions): SFTRun {
  const args = resolveSFTConfig(options.args);
  const common = commonRunParts<SFTConfig>(options);
  let completionOnly = args.completionOnlyLoss ?? false;
  let sources: { train: LazyBatchSource<TokenizedCompletion, SFTTrainerBatch> } | undefined;
  const definition: RunDefinition<SFTTrainerBatch, SFTConfig> = {
    method: "sft",
    args,
    model: options.model,
    ...common,
    loss: (run) => run.registry.create<SFTConfig, CompletionInputs>(args.lossType, args),
    task: (run, loss) => new CompletionTask(run.model, loss as Loss<CompletionInputs>, args.computeEntropy),
    data: (run) => {
      const tokenize = { maxLength: args.maxLength, warn: common.warn! };
      const load = (input: CompletionDatasetInput, field: string, decides: boolean) => async () => {
        const resolved = await resolveCompletionDataset(input, run.tokenizer, tokenize, field);
        if (decides) completionOnly = args.completionOnlyLoss ?? resolved.promptCompletion;
        return resolved.examples;
      };
      const padTokenId = resolvePadTokenId(args.padTokenId, run.tokenizer, run.model.config);
      sources = trainAndEvalSources(
        args,
        {
          train: load(options.trainDataset, "trainDataset", true),
          eval: options.evalDataset !== undefined ? load(options.evalDataset, "evalDataset", false) : undefined,
        },
        () => collateCompletions(padTokenId, () => completionOnly),
      );
      return sources;
    },
  };
  return { definition, train: () => sources?.train, completionOnly: () => completionOnly };
}
