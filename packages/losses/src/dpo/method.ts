/**
 * How a DPO run is composed: TRL's `DPOConfig` defaults, preference data, the reference, the combined
 * DPO loss from the registry, the preference task and the ln 2 warning.
 * @module
 */
import type { CausalLM, RunDefinition, TokenizerLike } from "@prefkit/core";
import type { PreferenceDatasetInput } from "../common/datasets.js";
import { commonRunParts, resolvePadTokenId, type TrainerCommonOptions } from "../common/options.js";
import { loadedRows, type PreferenceSources, preferenceSources } from "../preference/data.js";
import { RefLogProbCache, refCacheDir } from "../preference/ref-cache.js";
import { completionLogProbSums, resolveReference } from "../preference/reference.js";
import { type PreferenceBatch, PreferenceTask } from "../preference/task.js";
import { type DPOConfig, type DPOConfigInput, resolveDPOConfig } from "./config.js";
import { Ln2WarningCallback, type Ln2WarningOptions } from "./ln2-warning.js";
import { dpoObjective } from "./objective.js";

/** What the `DPOTrainer` (and `createTrainer("dpo", …)`) takes, with TRL's parameter names in camelCase. */
export interface DPOTrainerOptions extends TrainerCommonOptions {
  /** The policy to train. */
  model: CausalLM;
  /**
   * The reference. Default: the model itself with adapters switched off when it implements
   * `AdapterToggle` (LoRA; no copy), else a `frozenCopy()` of its weights when the trainer is built. With
   * `precomputeRefLogProbs` and no `refModel`, the untrained policy computes them once and no copy is kept.
   * To resume a run, build the trainer on the same starting model: the checkpoint then replaces the
   * policy's weights, not the reference's.
   */
  refModel?: CausalLM;
  /** The config; missing fields take TRL's defaults (`DPO_DEFAULTS`). */
  args?: DPOConfigInput;
  /** Training pairs: tokenised, raw TRL rows, or a file path (see {@link PreferenceDatasetInput}). */
  trainDataset: PreferenceDatasetInput;
  /** Evaluation pairs, same forms. */
  evalDataset?: PreferenceDatasetInput;
  /** Tuning of the "loss stuck at ln 2" warning. */
  ln2Warning?: Ln2WarningOptions;
}

/** The parts of a DPO run that its façade exposes. */
export interface DPORun {
  /** The run definition for the composition root. */
  definition: RunDefinition<PreferenceBatch, DPOConfig>;
  /** The ln 2 warning callback of the run. */
  ln2: Ln2WarningCallback;
  /** The data sources (built when the task is). */
  sources(): PreferenceSources | undefined;
}

/** Compose-ready description of a DPO run (see the module comment). */
export function dpoRun(options: DPOTrainerOptions): DPORun {
  const args = resolveDPOConfig(options.args);
  const common = commonRunParts<DPOConfig>(options);
  const ln2 = new Ln2WarningCallback(common.warn!, options.ln2Warning);
  let sources: PreferenceSources | undefined;
  const sourcesFor = (tokenizer: TokenizerLike | undefined, model: CausalLM) =>
    (sources ??= preferenceSources({
      args,
      trainDataset: options.trainDataset,
      evalDataset: options.evalDataset,
      tokenizer,
      tokenize: {
        maxLength: args.maxLength,
        maxPromptLength: args.maxPromptLength,
        maxCompletionLength: args.maxCompletionLength,
        warn: common.warn!,
      },
      padTokenId: resolvePadTokenId(args.padTokenId, tokenizer, model.config),
    }));
  const definition: RunDefinition<PreferenceBatch, DPOConfig> = {
    method: "dpo",
    args,
    model: options.model,
    ...(options.refModel !== undefined ? { referenceModel: options.refModel } : {}),
    ...common,
    methodCallbacks: [ln2],
    loss: (run) => dpoObjective(run.registry, run.args),
    task: (run, loss) => {
      const data = sourcesFor(run.tokenizer, run.model);
      const reference =
        loss.needsReference === false
          ? undefined
          : resolveReference(run.model, run.referenceModel, args.precomputeRefLogProbs);
      const refCache =
        args.precomputeRefLogProbs && reference !== undefined
          ? new RefLogProbCache(
              {
                reference,
                separateReference: run.referenceModel,
                policy: run.model,
                cacheDir: refCacheDir(args.outputDir, args.refLogProbsCacheDir),
                padTokenId: resolvePadTokenId(args.padTokenId, run.tokenizer, run.model.config),
                batchSize: args.perDeviceTrainBatchSize,
              },
              (batch) =>
                reference.run((net) =>
                  completionLogProbSums(net, batch.inputIds, batch.completionMask, batch.attentionMask),
                ),
            )
          : undefined;
      return new PreferenceTask({
        model: run.model,
        loss,
        reference,
        refCache,
        rows: (split) => loadedRows(data, split),
        beta: args.beta,
      });
    },
    data: (run) => sourcesFor(run.tokenizer, run.model),
  };
  return { definition, ln2, sources: () => sources };
}
