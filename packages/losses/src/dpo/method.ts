/**
 * How a DPO run is composed: TRL's `DPOConfig` defaults, preference data, the reference, the combined
 * DPO loss from the registry, the preference task, the ln 2 warning and, with `syncRefModel`, TR-DPO's
 * reference sync.
 * @module
 */
import type { CausalLM, RunDefinition, TokenizerLike } from "@prefkit/core";
import type { PreferenceDatasetInput } from "../common/datasets.js";
import { commonRunParts, resolvePadTokenId, type TrainerCommonOptions } from "../common/options.js";
import { loadedRows, type PreferenceSources, preferenceSources } from "../preference/data.js";
import { RefLogProbCache, refCacheDir } from "../preference/ref-cache.js";
import { referenceLogProbSums, resolveReference } from "../preference/reference.js";
import { type PreferenceBatch, PreferenceTask } from "../preference/task.js";
import { type DPOConfig, type DPOConfigInput, resolveDPOConfig } from "./config.js";
import { Ln2WarningCallback, type Ln2WarningOptions } from "./ln2-warning.js";
import { dpoObjective } from "./objective.js";
import { PolicyWithReference, SyncRefModelCallback, syncTarget } from "./sync-ref-model.js";

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
  /** TR-DPO's reference sync, when `syncRefModel` is on. */
  sync: SyncRefModelCallback | undefined;
  /** The data sources (built when the task is). */
  sources(): PreferenceSources | undefined;
}

/** Compose-ready description of a DPO run (see the module comment). */
export function dpoRun(options: DPOTrainerOptions): DPORun {
  const args = resolveDPOConfig(options.args);
  const common = commonRunParts<DPOConfig>(options);
  const ln2 = new Ln2WarningCallback(common.warn!, options.ln2Warning);
  const sync = args.syncRefModel ? new SyncRefModelCallback() : undefined;
  if (args.truncationMode === "keep_end") {
    // TRL's DPOConfig.__post_init__ warns the same (FutureWarning).
    common.warn!(
      'truncationMode "keep_end" is deprecated in TRL and will be removed in its v2.0.0; "keep_start" is the default',
    );
  }
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
        truncationMode: args.truncationMode,
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
    methodCallbacks: sync === undefined ? [ln2] : [ln2, sync],
    loss: (run) => dpoObjective(run.registry, run.args),
    task: (run, loss) => {
      const data = sourcesFor(run.tokenizer, run.model);
      const reference =
        loss.needsReference === false
          ? undefined
          : resolveReference(run.model, run.referenceModel, args.precomputeRefLogProbs);
      sync?.attach(syncTarget(run.model, reference?.model));
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
                ...(args.ldAlpha !== null ? { variant: `ld${args.ldAlpha}` } : {}),
              },
              (batch) => referenceLogProbSums(reference, batch, args.ldAlpha),
            )
          : undefined;
      return new PreferenceTask({
        model: run.model,
        loss,
        reference,
        refCache,
        rows: (split) => loadedRows(data, split),
        beta: args.beta,
        ldAlpha: args.ldAlpha,
        useWeighting: args.useWeighting,
      });
    },
    data: (run) => sourcesFor(run.tokenizer, run.model),
    // TR-DPO: checkpoints carry the synced reference, so a resume restores it.
    ...(sync !== undefined
      ? {
          trainedModel: (run, task) => {
            const reference = (task as PreferenceTask).options.reference?.model;
            return reference === undefined ? run.model : new PolicyWithReference(run.model, reference);
          },
        }
      : {}),
  };
  return { definition, ln2, sync, sources: () => sources };
}
