/**
 * The run of a reference-free preference method (ORPO, CPO/SimPO): preference data, the method's loss from the
 * registry, and the preference task without a reference (no reference pass, no frozen copy).
 * @module
 */
import type { CausalLM, Loss, PreferenceInputs, RunDefinition, TrainingArgs } from "@prefkit/core";
import type { PreferenceDatasetInput } from "../common/datasets.js";
import { commonRunParts, resolvePadTokenId, type TrainerCommonOptions } from "../common/options.js";
import { type PreferenceSources, preferenceSources } from "./data.js";
import { type PreferenceBatch, PreferenceTask } from "./task.js";

/** What the reference-free preference trainers take, with TRL's parameter names in camelCase. */
export interface ReferenceFreeTrainerOptions<TArgs> extends TrainerCommonOptions {
  /** The policy to train. */
  model: CausalLM;
  /** The config; missing fields take the method's TRL defaults. */
  args?: Partial<TArgs>;
  /** Training pairs: tokenised, raw TRL rows, or a file path. */
  trainDataset: PreferenceDatasetInput;
  /** Evaluation pairs, same forms. */
  evalDataset?: PreferenceDatasetInput;
}

/** The preference fields a reference-free config carries. */
export interface ReferenceFreeConfig extends TrainingArgs {
  /** β of the method (also scales the logged rewards β·p). */
  beta: number;
  /** Maximum prompt + completion tokens (`null`: no limit). */
  maxLength: number | null;
  /** Maximum completion tokens (`null`: no separate limit). */
  maxCompletionLength: number | null;
  /** Pad id (`null`: the tokenizer's). */
  padTokenId: number | null;
}

/** A compose-ready reference-free run and its data sources. */
export interface ReferenceFreeRun<TArgs extends ReferenceFreeConfig> {
  /** The run definition for the composition root. */
  definition: RunDefinition<PreferenceBatch, TArgs>;
  /** The data sources (built when the task is). */
  sources(): PreferenceSources | undefined;
}

/** Compose-ready description of a reference-free preference run whose loss `lossFor` builds from the registry. */
export function referenceFreeRun<TArgs extends ReferenceFreeConfig>(
  method: string,
  args: TArgs,
  options: ReferenceFreeTrainerOptions<TArgs>,
  lossFor: (run: Parameters<RunDefinition<PreferenceBatch, TArgs>["loss"]>[0]) => Loss<PreferenceInputs>,
): ReferenceFreeRun<TArgs> {
  const common = commonRunParts<TArgs>(options);
  let sources: PreferenceSources | undefined;
  const definition: RunDefinition<PreferenceBatch, TArgs> = {
    method,
    args,
    model: options.model,
    ...common,
    loss: lossFor,
    task: (run, loss) => new PreferenceTask({ model: run.model, loss, reference: undefined, beta: args.beta }),
    data: (run) =>
      (sources = preferenceSources({
        args,
        trainDataset: options.trainDataset,
        evalDataset: options.evalDataset,
        tokenizer: run.tokenizer,
        tokenize: { maxLength: args.maxLength, maxCompletionLength: args.maxCompletionLength, warn: common.warn! },
        padTokenId: resolvePadTokenId(args.padTokenId, run.tokenizer, run.model.config),
      })),
  };
  return { definition, sources: () => sources };
}
