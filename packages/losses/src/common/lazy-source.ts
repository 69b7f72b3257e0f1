/**
 * Batch sources whose rows are loaded and tokenised when training (or evaluation) starts, not when the
 * trainer is built: tokenising a file can be slow, and a trainer is cheap to construct.
 * @module
 */
import { arrayBatchSource, type BatchSource, ConfigError } from "@prefkit/core";

/** A row with its index in the dataset (what collate functions receive). */
export interface IndexedRow<TRow> {
  /** The row. */
  row: TRow;
  /** Its position in the dataset. */
  index: number;
}

/** Options of {@link LazyBatchSource}. */
export interface LazyBatchSourceOptions<TRow, TBatch> {
  /** Name for error messages (`"trainDataset"`). */
  what: string;
  /** Loads and tokenises the rows (called once, by `prepare()`). */
  load: () => Promise<TRow[]>;
  /** Rows per micro-batch. */
  batchSize: number;
  /** Rows (with their dataset index) → a micro-batch. */
  collate: (rows: Array<IndexedRow<TRow>>) => TBatch;
  /** Shuffle every epoch (seeded by `seed + epoch`). */
  shuffle: boolean;
  /** Seed of the shuffle. */
  seed: number;
}

/** A {@link BatchSource} over rows that `prepare()` loads, with core's seeded per-epoch shuffle. */
export class LazyBatchSource<TRow, TBatch> implements BatchSource<TBatch> {
  private loaded: TRow[] | undefined;
  private inner: BatchSource<TBatch> | undefined;
  private loading: Promise<void> | undefined;

  /** @param options see {@link LazyBatchSourceOptions}. */
  constructor(private readonly options: LazyBatchSourceOptions<TRow, TBatch>) {}

  /** Load the rows once; later calls share the first one's promise. */
  prepare(): Promise<void> {
    this.loading ??= this.options.load().then((rows) => {
      const { batchSize, collate, shuffle, seed } = this.options;
      this.loaded = rows;
      this.inner = arrayBatchSource(
        rows.map((row, index) => ({ row, index })),
        { batchSize, collate, shuffle, seed },
      );
    });
    return this.loading;
  }

  /** The loaded rows. @throws ConfigError before `prepare()` finished. */
  get rows(): TRow[] {
    this.source();
    return this.loaded!;
  }

  /** True once the rows are loaded. */
  get ready(): boolean {
    return this.inner !== undefined;
  }

  /** Micro-batches per epoch. */
  get numBatches(): number {
    return this.source().numBatches;
  }

  /** The micro-batches of epoch `epoch`. */
  batches(epoch: number): Iterable<TBatch> | AsyncIterable<TBatch> {
    return this.source().batches(epoch);
  }

  private source(): BatchSource<TBatch> {
    if (!this.inner) throw new ConfigError(`${this.options.what} is not prepared yet (call train() or evaluate())`);
    return this.inner;
  }
}

/** The train source (shuffled per epoch) and, when there is eval data, the eval source (in order). */
export function trainAndEvalSources<TRow, TBatch>(
  args: { perDeviceTrainBatchSize: number; seed: number },
  load: { train: () => Promise<TRow[]>; eval?: (() => Promise<TRow[]>) | undefined },
  collate: (split: "train" | "eval") => (rows: Array<IndexedRow<TRow>>) => TBatch,
): { train: LazyBatchSource<TRow, TBatch>; eval?: LazyBatchSource<TRow, TBatch> } {
  const common = { batchSize: args.perDeviceTrainBatchSize, seed: args.seed };
  const train = new LazyBatchSource({
    ...common,
    what: "trainDataset",
    load: load.train,
    collate: collate("train"),
    shuffle: true,
  });
  if (load.eval === undefined) return { train };
  const evalSource = new LazyBatchSource({
    ...common,
    what: "evalDataset",
    load: load.eval,
    collate: collate("eval"),
    shuffle: false,
  });
  return { train, eval: evalSource };
}
