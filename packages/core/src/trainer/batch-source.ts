import { ConfigError } from "../errors/index.js";
import type { BatchSource } from "../interfaces/trainer.js";
import { Rng } from "../rng/index.js";

/** Options of {@link arrayBatchSource}. */
export interface ArrayBatchSourceOptions<TRow, TBatch> {
  /** Rows per micro-batch. */
  batchSize: number;
  /** Turns the rows of one micro-batch into a batch (collation, padding). */
  collate: (rows: TRow[]) => TBatch;
  /** Shuffle every epoch. Default true. */
  shuffle?: boolean;
  /** Seed of the shuffle; epoch e uses `new Rng(seed + e)`, so any epoch can be replayed. Default 42. */
  seed?: number;
  /** Drop a last, smaller micro-batch. Default false. */
  dropLast?: boolean;
}

/**
 * A {@link BatchSource} over an in-memory array: per-epoch seeded shuffle, fixed-size
 * micro-batches, user collation. Epoch e's order depends only on `seed` and e, which is what
 * exact resumption needs.
 */
export function arrayBatchSource<TRow, TBatch>(
  rows: readonly TRow[],
  options: ArrayBatchSourceOptions<TRow, TBatch>,
): BatchSource<TBatch> {
  const { batchSize, collate, shuffle = true, seed = 42, dropLast = false } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ConfigError(`expected a positive integer, got ${batchSize}`, { field: "batchSize" });
  }
  const numBatches = dropLast ? Math.floor(rows.length / batchSize) : Math.ceil(rows.length / batchSize);
  return {
    numBatches,
    *batches(epoch: number): Iterable<TBatch> {
      const order = shuffle ? new Rng(seed + epoch).permutation(rows.length) : rows.map((_, i) => i);
      for (let b = 0; b < numBatches; b++) {
        yield collate(order.slice(b * batchSize, (b + 1) * batchSize).map((i) => rows[i]!));
      }
    },
  };
}
