/**
 * How a reward-model run is composed: TRL's `RewardConfig` defaults, preference pairs (over-long rows
 * dropped, not truncated), the `"reward"` loss and the pair-score task.
 * @module
 */
import {
  type CausalLM,
  ConfigError,
  DatasetError,
  droppedCount,
  type Loss,
  type PairScoreInputs,
  type RunDefinition,
  type SequenceClassifier,
  type TokenizedPreference,
  type TokenizerLike,
} from "@prefkit/core";
import { type PreferenceDatasetInput, resolvePreferenceDataset } from "../common/datasets.js";
import { type LazyBatchSource, trainAndEvalSources } from "../common/lazy-source.js";
import { commonRunParts, resolvePadTokenId, type TrainerCommonOptions } from "../common/options.js";
import { type RewardConfig, resolveRewardConfig } from "./config.js";
import { collateRewardRows, PairScoreTask, type RewardTrainerBatch } from "./task.js";

/** What the `RewardTrainer` (and `createTrainer("reward", …)`) takes, with TRL's parameter names in camelCase. */
export interface RewardTrainerOptions extends TrainerCommonOptions {
  /**
   * The reward model: a {@link SequenceClassifier} with one label, e.g.
   * `AutoModelForSequenceClassification.fromPretrained(dir, { numLabels: 1, seed })` from `@prefkit/models`.
   */
  model: SequenceClassifier;
  /** The config; missing fields take TRL's defaults (`REWARD_DEFAULTS`). */
  args?: Partial<RewardConfig>;
  /**
   * Training pairs: tokenised (`{ promptIds, chosenIds, rejectedIds, margin? }`), raw TRL rows
   * (`{ prompt, chosen, rejected, margin? }` or implicit `{ chosen, rejected }`, strings or messages; the
   * model scores prompt+chosen and prompt+rejected), or a JSON/JSONL file path.
   */
  trainDataset: PreferenceDatasetInput;
  /** Evaluation pairs, same forms. */
  evalDataset?: PreferenceDatasetInput;
}

/** Rows dropped because prompt+chosen or prompt+rejected is longer than `maxLength`, per split. */
export interface RewardDroppedRows {
  /** Training rows dropped. */
  train: number;
  /** Evaluation rows dropped. */
  eval: number;
}

/** The parts of a reward run that its façade exposes. */
export interface RewardRun {
  /** The run definition for the composition root. */
  definition: RunDefinition<RewardTrainerBatch, RewardConfig>;
  /** Over-long rows dropped per split (filled when the data is loaded). */
  droppedRows: RewardDroppedRows;
  /** The sources (rows once loaded). */
  sources():
    | {
        train: LazyBatchSource<TokenizedPreference, RewardTrainerBatch>;
        eval?: LazyBatchSource<TokenizedPreference, RewardTrainerBatch>;
      }
    | undefined;
}

/** Tokenise (raw rows: the pipeline drops over-long rows) and drop over-long tokenised rows; count both. */
async function loadRewardRows(
  input: PreferenceDatasetInput,
  tokenizer: TokenizerLike | undefined,
  maxLength: number | null,
  field: string,
  warn: (message: string) => void,
): Promise<{ rows: TokenizedPreference[]; dropped: number; rowsIn: number }> {
  const resolved = await resolvePreferenceDataset(
    input,
    tokenizer,
    { maxLength, overlong: "drop", warn: () => {} }, // counted and reported once by the caller
    field,
    warn, // load and format notices (identical pairs, invalid UTF-8) are not counted by the caller
  );
  let dropped = resolved.reports.reduce((n, r) => n + (r.stage === "tokenize" ? droppedCount(r) : 0), 0);
  const rowsIn = resolved.tokenized
    ? (resolved.reports.at(-1)?.rowsIn ?? resolved.examples.length)
    : resolved.examples.length;
  let rows = resolved.examples;
  if (maxLength !== null) {
    const fits = (r: TokenizedPreference) =>
      r.promptIds.length + r.chosenIds.length <= maxLength &&
      (r.rejectedPromptIds ?? r.promptIds).length + r.rejectedIds.length <= maxLength;
    const kept = rows.filter(fits);
    dropped += rows.length - kept.length;
    rows = kept;
  }
  if (rows.length === 0) {
    throw new DatasetError(`every row is longer than maxLength (${maxLength}); nothing left to train on`, { field });
  }
  return { rows, dropped, rowsIn };
}

/** Compose-ready description of a reward-model run. */
export function rewardRun(options: RewardTrainerOptions): RewardRun {
  const args = resolveRewardConfig(options.args);
  if (options.model.numLabels !== 1) {
    throw new ConfigError(`a reward model needs numLabels = 1, got ${options.model.numLabels}`, { field: "model" });
  }
  const common = commonRunParts<RewardConfig>(options);
  const droppedRows: RewardDroppedRows = { train: 0, eval: 0 };
  let sources: ReturnType<RewardRun["sources"]>;
  const definition: RunDefinition<RewardTrainerBatch, RewardConfig> = {
    method: "reward",
    args,
    // The composition root transforms it like any model (LoRA wraps its body, the score head stays trainable).
    model: options.model as unknown as CausalLM,
    ...common,
    loss: (run) => run.registry.create<RewardConfig, PairScoreInputs>("reward", args),
    task: (run, loss) => new PairScoreTask(run.model as unknown as SequenceClassifier, loss as Loss<PairScoreInputs>),
    data: (run) => {
      const load = (input: PreferenceDatasetInput, split: "train" | "eval") => async () => {
        const field = split === "train" ? "trainDataset" : "evalDataset";
        const { rows, dropped, rowsIn } = await loadRewardRows(
          input,
          run.tokenizer,
          args.maxLength,
          field,
          common.warn!,
        );
        droppedRows[split] = dropped;
        if (dropped > 0) {
          common.warn!(
            `RewardTrainer: dropped ${dropped} of ${rowsIn} ${split === "train" ? "training" : "evaluation"} rows longer than maxLength (${args.maxLength})`,
          );
        }
        return rows;
      };
      const padTokenId = resolvePadTokenId(args.padTokenId, run.tokenizer, run.model.config);
      sources = trainAndEvalSources(
        args,
        {
          train: load(options.trainDataset, "train"),
          eval: options.evalDataset !== undefined ? load(options.evalDataset, "eval") : undefined,
        },
        () => collateRewardRows(padTokenId),
      );
      return sources;
    },
  };
  return { definition, droppedRows, sources: () => sources };
}
