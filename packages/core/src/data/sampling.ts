import { ConfigError } from "../errors/index.js";
import { Rng, type RngState } from "../rng/index.js";

/** Seeded shuffle of a copy of `rows` (same seed, same order). Pass an {@link Rng} to continue its stream. */
export function shuffleRows<T>(rows: readonly T[], seed: number | Rng = 42): T[] {
  return (typeof seed === "number" ? new Rng(seed) : seed).shuffle(rows);
}

/** Options of {@link trainTestSplit}. */
export interface TrainTestSplitOptions {
  /** A fraction in (0, 1) (the test count is rounded up, as `datasets`) or an absolute row count. */
  testSize: number;
  /** Seed of the shuffle (default 42). */
  seed?: number;
  /** Shuffle before splitting (default true). */
  shuffle?: boolean;
}

/**
 * Split rows into train and test sets after a seeded shuffle. The same rows and seed always give the same split.
 * @throws ConfigError when `testSize` leaves either side empty.
 */
export function trainTestSplit<T>(rows: readonly T[], options: TrainTestSplitOptions): { train: T[]; test: T[] } {
  const n = rows.length;
  const { testSize } = options;
  let nTest: number;
  if (testSize > 0 && testSize < 1) nTest = Math.ceil(testSize * n);
  else if (Number.isInteger(testSize) && testSize >= 1) nTest = testSize;
  else throw new ConfigError(`testSize must be a fraction in (0, 1) or a positive integer, got ${testSize}`);
  if (nTest >= n) {
    throw new ConfigError(`testSize ${testSize} leaves no training rows out of ${n}`, { field: "testSize" });
  }
  const order = (options.shuffle ?? true) ? shuffleRows(rows, options.seed ?? 42) : rows.slice();
  return { train: order.slice(0, n - nTest), test: order.slice(n - nTest) };
}

/** Where a {@link BatchIterator} is, for checkpoints: enough to continue with exactly the same data order. */
export interface BatchIteratorState {
  /** 0-based epoch. */
  epoch: number;
  /** Position within this epoch's order (rows already served). */
  index: number;
  /** Batches served so far, over all epochs. */
  step: number;
  /** Rng state at the start of this epoch, before its permutation was drawn. */
  epochRng: RngState;
  /** Dataset size the state belongs to (checked on restore). */
  datasetSize: number;
}

/** Options of {@link BatchIterator}. */
export interface BatchIteratorOptions {
  /** Rows per batch. */
  batchSize: number;
  /** Reshuffle every epoch (default true). */
  shuffle?: boolean;
  /** Seed of the shuffles (default 42). */
  seed?: number;
  /** Drop the last incomplete batch of each epoch (default false). */
  dropLast?: boolean;
  /** Stop after this many epochs (default: never; iterate with {@link BatchIterator.next} and stop yourself). */
  epochs?: number;
  /** Resume from a saved {@link BatchIteratorState}. */
  state?: BatchIteratorState;
}

/** One batch from a {@link BatchIterator}. */
export interface IteratorBatch<T> {
  /** The rows. */
  items: T[];
  /** Their indices in the dataset. */
  indices: number[];
  /** 0-based epoch. */
  epoch: number;
  /** 0-based global batch number. */
  step: number;
}

/**
 * Batches over epochs with a seeded per-epoch shuffle and a resumable position: `getState()` after any batch,
 * saved and passed back as `state`, makes the new iterator serve exactly the batches the old one would have.
 */
export class BatchIterator<T> implements IterableIterator<IteratorBatch<T>> {
  private readonly rows: readonly T[];
  private readonly batchSize: number;
  private readonly shuffle: boolean;
  private readonly dropLast: boolean;
  private readonly maxEpochs: number;
  private rng: Rng;
  private epoch: number;
  private index: number;
  private step: number;
  private epochRng: RngState;
  private order: number[];

  /** @throws ConfigError for an empty dataset, a bad batch size, or a state saved for another dataset size. */
  constructor(rows: readonly T[], options: BatchIteratorOptions) {
    if (rows.length === 0) throw new ConfigError("BatchIterator: the dataset is empty");
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new ConfigError(`batchSize must be a positive integer, got ${options.batchSize}`, { field: "batchSize" });
    }
    if ((options.dropLast ?? false) && options.batchSize > rows.length) {
      throw new ConfigError(`batchSize ${options.batchSize} > ${rows.length} rows with dropLast: no batch`, {
        field: "batchSize",
      });
    }
    this.rows = rows;
    this.batchSize = options.batchSize;
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.maxEpochs = options.epochs ?? Number.POSITIVE_INFINITY;
    const state = options.state;
    if (state !== undefined && state.datasetSize !== rows.length) {
      throw new ConfigError(`iterator state is for ${state.datasetSize} rows, dataset has ${rows.length}`);
    }
    this.epoch = state?.epoch ?? 0;
    this.index = state?.index ?? 0;
    this.step = state?.step ?? 0;
    this.rng = state !== undefined ? Rng.fromState(state.epochRng) : new Rng(options.seed ?? 42);
    this.epochRng = this.rng.getState();
    this.order = this.drawOrder();
  }

  private drawOrder(): number[] {
    return this.shuffle ? this.rng.permutation(this.rows.length) : Array.from(this.rows, (_, i) => i);
  }

  private epochDone(): boolean {
    const left = this.rows.length - this.index;
    return left <= 0 || (this.dropLast && left < this.batchSize);
  }

  /** The position after the last batch served (JSON-serialisable). */
  getState(): BatchIteratorState {
    return {
      epoch: this.epoch,
      index: this.index,
      step: this.step,
      epochRng: { ...this.epochRng, s: [...this.epochRng.s] as RngState["s"] },
      datasetSize: this.rows.length,
    };
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.rows.length / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The next batch, moving to the next epoch (with a fresh shuffle) when this one is used up. */
  next(): IteratorResult<IteratorBatch<T>> {
    if (this.epochDone()) {
      if (this.epoch + 1 >= this.maxEpochs) return { done: true, value: undefined };
      this.epoch++;
      this.index = 0;
      this.epochRng = this.rng.getState();
      this.order = this.drawOrder();
    }
    if (this.epoch >= this.maxEpochs) return { done: true, value: undefined };
    const indices = this.order.slice(this.index, this.index + this.batchSize);
    this.index += indices.length;
    const batch: IteratorBatch<T> = {
      items: indices.map((i) => this.rows[i]!),
      indices,
      epoch: this.epoch,
      step: this.step,
    };
    this.step++;
    return { done: false, value: batch };
  }

  /** Iterate the remaining batches (until `epochs` is reached; unbounded otherwise). */
  [Symbol.iterator](): IterableIterator<IteratorBatch<T>> {
    return this;
  }
}
