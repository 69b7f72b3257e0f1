/**
 * The on-policy prompt sources (PPO, GRPO, RLOO): training prompts shuffled per epoch and cut into
 * update-sized chunks, and the held-out prompts of `evaluate()`. Both tokenise their rows when training or
 * evaluation starts. GRPO and RLOO repeat each prompt `repeats` (= `numGenerations`) times in a row, as
 * TRL's `RepeatSampler`, so the rows of one prompt stay consecutive within an update.
 * @module
 */
import { type BatchSource, ConfigError, Rng, type TokenizerLike } from "@prefkit/core";
import { type PromptDatasetInput, type TokenizedPrompt, tokenizePrompts } from "./prompts.js";

/**
 * A chunk of prompts. In training, `chunkSize` rows of them, and `chunksPerUpdate` chunks make one update;
 * in evaluation, every held-out prompt.
 */
export interface PPOPromptChunk {
  /** Prompt ids, unpadded (a repeated prompt appears once per repetition). */
  promptIds: number[][];
  /** Dataset index of each prompt. */
  rowIndices: number[];
  /** The dataset row's other fields of each prompt (`{}` when it has none). */
  columns: Record<string, unknown>[];
}

/** Options of {@link PromptChunkSource}. */
export interface PromptChunkSourceOptions {
  /** The prompts. */
  dataset: PromptDatasetInput;
  /** `trainDataset` or `evalDataset` (for errors). */
  field: string;
  /** Tokenises raw prompts. */
  tokenizer: TokenizerLike | undefined;
  /** Rows per chunk (repetitions counted); `null`: one chunk of every prompt, in order (evaluation). */
  chunkSize: number | null;
  /** Chunks per update; training drops the prompts of an incomplete update. */
  chunksPerUpdate: number;
  /** Seed of the per-epoch shuffle (`seed + epoch`). */
  seed: number;
  /** Consecutive copies of each prompt (GRPO's `numGenerations`); must divide an update's rows. Default 1. */
  repeats?: number;
}

/** Prompts, tokenised by `prepare()`, shuffled per epoch (training) and cut into {@link PPOPromptChunk}s. */
export class PromptChunkSource implements BatchSource<PPOPromptChunk> {
  private loaded: TokenizedPrompt[] | undefined;
  private loading: Promise<void> | undefined;

  /** @param options see {@link PromptChunkSourceOptions}. */
  constructor(private readonly options: PromptChunkSourceOptions) {}

  private get repeats(): number {
    return this.options.repeats ?? 1;
  }

  /**
   * Tokenise the prompts once; later calls share the first one's promise.
   * @throws ConfigError when training prompts are fewer than one update's batch.
   */
  prepare(): Promise<void> {
    this.loading ??= (async () => {
      const { dataset, tokenizer, field, chunkSize, chunksPerUpdate } = this.options;
      const rows = await tokenizePrompts(dataset, tokenizer, {}, field);
      const perUpdate = chunkSize === null ? 0 : (chunkSize * chunksPerUpdate) / this.repeats;
      if (rows.length < perUpdate) {
        const formula =
          this.repeats === 1
            ? "perDeviceTrainBatchSize × gradientAccumulationSteps × numMiniBatches"
            : "perDeviceTrainBatchSize × gradientAccumulationSteps / numGenerations";
        throw new ConfigError(`${rows.length} prompts are fewer than one update's batch (${formula} = ${perUpdate})`, {
          field,
        });
      }
      this.loaded = rows;
    })();
    return this.loading;
  }

  /** The tokenised prompts (empty before `prepare()` finished). */
  get rows(): TokenizedPrompt[] {
    return this.loaded ?? [];
  }

  /** Chunks per epoch: whole updates only in training, one chunk in evaluation. */
  get numBatches(): number {
    const { chunkSize, chunksPerUpdate } = this.options;
    if (chunkSize === null) return 1;
    return Math.floor((this.rows.length * this.repeats) / (chunkSize * chunksPerUpdate)) * chunksPerUpdate;
  }

  /** The chunks of epoch `epoch` (a seeded permutation of the prompts in training, each repeated). */
  *batches(epoch: number): Iterable<PPOPromptChunk> {
    const rows = this.rows;
    const { chunkSize, seed } = this.options;
    const repeated = (order: number[]) => order.flatMap((i) => new Array<number>(this.repeats).fill(i));
    const chunk = (idx: number[]): PPOPromptChunk => ({
      promptIds: idx.map((i) => rows[i]!.inputIds),
      rowIndices: idx,
      columns: idx.map((i) => rows[i]!.columns ?? {}),
    });
    if (chunkSize === null) {
      yield chunk(repeated(rows.map((_, i) => i)));
      return;
    }
    const order = repeated(new Rng(seed + epoch).permutation(rows.length));
    for (let b = 0; b < this.numBatches; b++) yield chunk(order.slice(b * chunkSize, (b + 1) * chunkSize));
  }
}

/** The chunks' extra columns, column-major: one value per row (`undefined` where a row lacks the field). */
export function chunkColumns(chunks: readonly PPOPromptChunk[]): Record<string, unknown[]> {
  const rows = chunks.flatMap((c) => c.columns);
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return Object.fromEntries(names.map((name) => [name, rows.map((r) => r[name])]));
}

/** What {@link promptSources} builds an on-policy run's prompt sources from. */
export interface PromptSourcesOptions {
  /** Training prompts. */
  trainDataset: PromptDatasetInput;
  /** Held-out prompts, if any (one chunk of every prompt). */
  evalDataset?: PromptDatasetInput | undefined;
  /** Tokenises raw prompts. */
  tokenizer: TokenizerLike | undefined;
  /** Training rows per chunk (repetitions counted). */
  chunkSize: number;
  /** Chunks per update (`gradientAccumulationSteps`). */
  chunksPerUpdate: number;
  /** Seed of the per-epoch shuffle. */
  seed: number;
  /** Consecutive copies of each prompt (GRPO's `numGenerations`). Default 1. */
  repeats?: number;
}

/** The training (and evaluation) {@link PromptChunkSource}s of an on-policy run (PPO, GRPO, RLOO). */
export function promptSources(o: PromptSourcesOptions): { train: PromptChunkSource; eval?: PromptChunkSource } {
  const source = (dataset: PromptDatasetInput, field: string, chunkSize: number | null) =>
    new PromptChunkSource({
      dataset,
      field,
      tokenizer: o.tokenizer,
      chunkSize,
      chunksPerUpdate: o.chunksPerUpdate,
      seed: o.seed,
      ...(o.repeats !== undefined ? { repeats: o.repeats } : {}),
    });
  return {
    train: source(o.trainDataset, "trainDataset", o.chunkSize),
    ...(o.evalDataset !== undefined ? { eval: source(o.evalDataset, "evalDataset", null) } : {}),
  };
}
