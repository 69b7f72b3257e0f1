import { describe, expect, it } from "vitest";
import { BatchIterator, type BatchIteratorState, shuffleRows, trainTestSplit } from "../../src/data/index.js";

const data = Array.from({ length: 10 }, (_, i) => i);

describe("shuffleRows / trainTestSplit", () => {
  it("is deterministic for a seed and differs across seeds", () => {
    expect(shuffleRows(data, 1)).toEqual(shuffleRows(data, 1));
    expect(shuffleRows(data, 1)).not.toEqual(shuffleRows(data, 2));
    expect([...shuffleRows(data, 1)].sort((x, y) => x - y)).toEqual(data);
  });

  it("splits with a rounded-up test size, disjoint and complete, reproducibly", () => {
    const s = trainTestSplit(data, { testSize: 0.25, seed: 3 });
    expect(s.test).toHaveLength(3);
    expect(s.train).toHaveLength(7);
    expect([...s.train, ...s.test].sort((x, y) => x - y)).toEqual(data);
    expect(trainTestSplit(data, { testSize: 0.25, seed: 3 })).toEqual(s);
    expect(trainTestSplit(data, { testSize: 2, shuffle: false }).test).toEqual([8, 9]);
    expect(() => trainTestSplit(data, { testSize: 10 })).toThrow("leaves no training rows");
    expect(() => trainTestSplit(data, { testSize: 1.5 })).toThrow("testSize must be");
  });
});

describe("BatchIterator", () => {
  it("covers every row once per epoch, reshuffling each epoch", () => {
    const it3 = new BatchIterator(data, { batchSize: 4, seed: 7, epochs: 3 });
    const batches = [...it3];
    expect(batches).toHaveLength(9); // 3 per epoch: 4 + 4 + 2
    expect(batches.map((b) => b.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const epochs = [0, 1, 2].map((e) => batches.filter((b) => b.epoch === e).flatMap((b) => b.items));
    for (const e of epochs) expect([...e].sort((x, y) => x - y)).toEqual(data);
    expect(epochs[0]).not.toEqual(epochs[1]);
    expect(new BatchIterator(data, { batchSize: 4, seed: 7, epochs: 3 }).next().value).toEqual(batches[0]);
  });

  it("drops the last partial batch when asked", () => {
    const b = [...new BatchIterator(data, { batchSize: 4, dropLast: true, epochs: 2 })];
    expect(b.map((x) => x.items.length)).toEqual([4, 4, 4, 4]);
  });

  it("resumes from a saved state (mid-epoch and at an epoch boundary) with the same data order", () => {
    const reference = [...new BatchIterator(data, { batchSize: 3, seed: 11, epochs: 4 })];
    for (const stopAfter of [1, 4, 5, 9]) {
      const first = new BatchIterator(data, { batchSize: 3, seed: 11, epochs: 4 });
      const seen = Array.from({ length: stopAfter }, () => first.next().value!);
      const saved: BatchIteratorState = JSON.parse(JSON.stringify(first.getState()));
      const resumed = new BatchIterator(data, { batchSize: 3, seed: 999, epochs: 4, state: saved });
      expect([...seen, ...resumed]).toEqual(reference);
    }
    const state = new BatchIterator(data, { batchSize: 3 }).getState();
    expect(() => new BatchIterator([1, 2], { batchSize: 1, state })).toThrow("iterator state is for 10 rows");
  });
});
