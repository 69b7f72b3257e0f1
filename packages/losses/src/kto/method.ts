/**
 * How a KTO run is composed: TRL's `KTOConfig` defaults, unpaired data (pairs unpaired as TRL does) with each
 * row's KL completion taken from its neighbour in its sequential batch, the reference, the `"unpaired"` loss
 * from the registry, and the unpaired task.
 * @module
 */
import { type CausalLM, klMismatchedCompletions, type RunDefinition, type TokenizerLike } from "@prefkit/core";
import { resolveUnpairedDataset, type UnpairedDatasetInput } from "../common/datasets.js";
import { LazyBatchSource } from "../common/lazy-source.js";
import { commonRunParts, resolvePadTokenId, type TrainerCommonOptions } from "../common/options.js";
import { resolveReference } from "../preference/reference.js";
import { type KTOConfig, resolveKTOConfig } from "./config.js";
import type { UnpairedLoss } from "./objective.js";
import { collateKTO, type KTOBatch, type KTORow, UnpairedTask } from "./task.js";

/** What the `KTOTrainer` (and `createTrainer("kto", …)`) takes, with TRL's parameter names in camelCase. */
export interface KTOTrainerOptions extends TrainerCommonOptions {
  /** The policy to train. */
  model: CausalLM;
  /** The reference. Default as the `DPOTrainer`: adapters off (LoRA), else a frozen copy made when the trainer is built. */
  refModel?: CausalLM;
  /** The config; missing fields take TRL's defaults (`KTO_DEFAULTS`). */
  args?: Partial<KTOConfig>;
  /** Training rows: unpaired `{ prompt, completion, label }`, preference pairs (unpaired), tokenised rows, or a file. */
  trainDataset: UnpairedDatasetInput;
  /** Evaluation rows, same forms. */
  evalDataset?: UnpairedDatasetInput;
}

/** The parts of a KTO run that its façade exposes. */
export interface KTORun {
  /** The run definition for the composition root. */
  definition: RunDefinition<KTOBatch, KTOConfig>;
  /** The training source (rows once loaded). */
  train(): LazyBatchSource<KTORow, KTOBatch> | undefined;
}

/** Tokenised unpaired rows, each with its KL completion (TRL's `KL_completion_ids`, blocks of `batchSize`). */
async function loadKTORows(
  input: UnpairedDatasetInput,
  tokenizer: TokenizerLike | undefined,
  args: KTOConfig,
  warn: (m: string) => void,
  field: string,
): Promise<KTORow[]> {
  const rows = (await resolveUnpairedDataset(input, tokenizer, { maxLength: args.maxLength, warn }, field)).examples;
  const kl = klMismatchedCompletions(
    rows.map((r) => r.completionIds),
    args.perDeviceTrainBatchSize,
  );
  if (field === "trainDataset") warnOnWeights(rows, args, warn);
  return rows.map((r, i) => ({ ...r, klCompletionIds: kl[i]! }));
}

/**
 * TRL's advice (KTO paper, Eq. 8): with unequal numbers of desirable and undesirable rows, either
 * desirableWeight·n_d / (undesirableWeight·n_u) or its inverse should lie in [1, 4/3]; warn when neither does.
 */
function warnOnWeights(rows: readonly { label: boolean }[], args: KTOConfig, warn: (m: string) => void): void {
  const nd = Math.max(rows.filter((r) => r.label).length, 1);
  const nu = Math.max(rows.length - nd, 1);
  if (nd === nu) return;
  const round = (x: number) => Math.round(x * 100) / 100;
  const dLow = round((nu * args.undesirableWeight) / nd);
  const dHigh = round(((nu * args.undesirableWeight) / nd) * 1.33);
  const uLow = round((nd * args.desirableWeight) / nu / 1.33);
  const uHigh = round((nd * args.desirableWeight) / nu);
  const dOk = dLow <= args.desirableWeight && args.desirableWeight <= dHigh;
  const uOk = uLow <= args.undesirableWeight && args.undesirableWeight <= uHigh;
  if (!dOk && !uOk) {
    warn(
      `KTOTrainer: ${nd} desirable and ${nu} undesirable rows, but the weights are outside the recommended range: ` +
        `set EITHER desirableWeight in [${dLow}, ${dHigh}] OR undesirableWeight in [${uLow}, ${uHigh}] (not both)`,
    );
  }
}

/** Compose-ready description of a KTO run. */
export function ktoRun(options: KTOTrainerOptions): KTORun {
  const args = resolveKTOConfig(options.args);
  const common = commonRunParts<KTOConfig>(options);
  let train: LazyBatchSource<KTORow, KTOBatch> | undefined;
  const definition: RunDefinition<KTOBatch, KTOConfig> = {
    method: "kto",
    args,
    model: options.model,
    ...(options.refModel !== undefined ? { referenceModel: options.refModel } : {}),
    ...common,
    loss: (run) => run.registry.create(args.lossType, args),
    task: (run, loss) =>
      new UnpairedTask(run.model, loss as UnpairedLoss, resolveReference(run.model, run.referenceModel, false)),
    data: (run) => {
      const padTokenId = resolvePadTokenId(args.padTokenId, run.tokenizer, run.model.config);
      const source = (input: UnpairedDatasetInput, field: string, shuffle: boolean) =>
        new LazyBatchSource({
          what: field,
          load: () => loadKTORows(input, run.tokenizer, args, common.warn!, field),
          batchSize: args.perDeviceTrainBatchSize,
          collate: collateKTO(padTokenId),
          shuffle,
          seed: args.seed,
        });
      train = source(options.trainDataset, "trainDataset", args.trainSamplingStrategy === "random");
      return {
        train,
        ...(options.evalDataset !== undefined ? { eval: source(options.evalDataset, "evalDataset", false) } : {}),
      };
    },
  };
  return { definition, train: () => train };
}
