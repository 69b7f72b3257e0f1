/**
 * The PPO prompt sources: training prompts shuffled per epoch and cut into update-sized chunks, and the
 * held-out prompts of `evaluate()`. Both tokenise their rows when training or evaluation starts.
 * @module
 */
import { type BatchSource, ConfigError, Rng, type TokenizerLike } from "@prefkit/core";
import { type PromptDatasetInput, type TokenizedPrompt, tokenizePrompts } from "./prompts.js";

/**
 * A chunk of prompts. In training, `perDeviceTrainBatchSize × numMiniBatches` of them, and
 * `gradientAccumulationSteps` chunks make one update; in evaluation, every held-out prompt.
 */
export interface PPOPromptChunk {
  /** Prompt ids, unpadded. */
  promptIds: number[][];
  /** Dataset index of each prompt. */
  rowIndices: number[];
}

/** Options of {@link PromptChunkSource}. */
export interface PromptChunkSourceOptions {
  /** The prompts. */
  dataset: PromptDatasetInput;
  /** `trainDataset` or `evalDataset` (for errors). */
  field: string;
  /** Tokenises raw prompts. */
  tokenizer: TokenizerLike | undefined;
  /** Prompts per chunk; `null`: one chunk of every prompt, in order (evaluation). */
  chunkSize: number | null;
  /** Chunks per update; training drops the prompts of an incomplete update. */
  chunksPerUpdate: number;
  /** Seed of the per-epoch shuffle (`seed + epoch`). */
  seed: number;
}

/** Prompts, tokenised by `prepare()`, shuffled per epoch (training) and cut into {@link PPOPromptChunk}s. */
export class PromptChunkSource implements BatchSource<PPOPromptChunk> {
  private loaded: TokenizedPrompt[] | undefined;
  private loading: Promise<void> | undefined;

  /** @param options see {@link PromptChunkSourceOptions}. */
  constructor(private readonly options: PromptChunkSourceOptions) {}

  /**
   * Tokenise the prompts once; later calls share the first one's promise.
   * @throws ConfigError when training prompts are fewer than one update's batch.
   */
  prepare(): Promise<void> {
    this.loading ??= (async () => {
      const { dataset, tokenizer, field, chunkSize, chunksPerUpdate } = this.options;
      const rows = await tokenizePrompts(dataset, tokenizer, {}, field);
      if (chunkSize !== null && rows.length < chunkSize * chunksPerUpdate) {
        throw new ConfigError(
          `${rows.length} prompts are fewer than one update's batch (perDeviceTrainBatchSize × ` +
            `gradientAccumulationSteps × numMiniBatches = ${chunkSize * chunksPerUpdate})`,
          { field },
        );
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
    return Math.floor(this.rows.length / (chunkSize * chunksPerUpdate)) * chunksPerUpdate;
  }

  /** The chunks of epoch `epoch` (a seeded permutation of the prompts in training). */
  *batches(epoch: number): Iterable<PPOPromptChunk> {
    const rows = this.rows;
    const { chunkSize, seed } = this.options;
    if (chunkSize === null) {
      yield { promptIds: rows.map((r) => r.inputIds), rowIndices: rows.map((_, i) => i) };
      return;
    }
    const order = new Rng(seed + epoch).permutation(rows.length);
    for (let b = 0; b < this.numBatches; b++) {
      const idx = order.slice(b * chunkSize, (b + 1) * chunkSize);
      yield { promptIds: idx.map((i) => rows[i]!.inputIds), rowIndices: idx };
    }
  }
}
