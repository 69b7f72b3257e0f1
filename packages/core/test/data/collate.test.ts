import { describe, expect, it } from "vitest";
import { collateDpo, collateReward, collateSft, type TokenizedPreference } from "../../src/data/index.js";

const EOS = 2; // pad == eos on purpose: masks must come from lengths.
const pairs: TokenizedPreference[] = [
  { promptIds: [5, 6], chosenIds: [7, EOS], rejectedIds: [8, 9, EOS] },
  { promptIds: [5], chosenIds: [EOS], rejectedIds: [9, EOS, EOS], margin: 1 },
];

describe("collateDpo", () => {
  it("stacks chosen then rejected, pads right, and builds masks from lengths even when pad == eos", () => {
    const b = collateDpo(pairs, { padTokenId: EOS });
    expect(b.batchSize).toBe(2);
    expect(b.inputIds).toEqual([
      [5, 6, 7, EOS, EOS],
      [5, EOS, EOS, EOS, EOS],
      [5, 6, 8, 9, EOS],
      [5, 9, EOS, EOS, EOS],
    ]);
    expect(b.attentionMask).toEqual([
      [1, 1, 1, 1, 0],
      [1, 1, 0, 0, 0],
      [1, 1, 1, 1, 1],
      [1, 1, 1, 1, 0],
    ]);
    // The real eos tokens (even a doubled one in row 4) are completion tokens; the pads are not.
    expect(b.completionMask).toEqual([
      [0, 0, 1, 1, 0],
      [0, 1, 0, 0, 0],
      [0, 0, 1, 1, 1],
      [0, 1, 1, 1, 0],
    ]);
    expect(b.promptLengths).toEqual([2, 1, 2, 1]);
    expect(b.completionLengths).toEqual([2, 1, 3, 3]);
    expect(b.margins).toBeUndefined(); // only one of two rows has a margin
  });

  it("gives the rejected rows their own prompt when keep_end truncation cut the two apart", () => {
    const b = collateDpo(
      [{ promptIds: [6], chosenIds: [7, 8, EOS], rejectedIds: [9, EOS], rejectedPromptIds: [5, 6] }],
      {
        padTokenId: 0,
      },
    );
    expect(b.inputIds).toEqual([
      [6, 7, 8, EOS],
      [5, 6, 9, EOS],
    ]);
    expect(b.completionMask).toEqual([
      [0, 1, 1, 1],
      [0, 0, 1, 1],
    ]);
    expect(b.promptLengths).toEqual([1, 2]);
    const r = collateReward([{ promptIds: [6], chosenIds: [7, 8, EOS], rejectedIds: [9], rejectedPromptIds: [5, 6] }], {
      padTokenId: 0,
    });
    expect(r.inputIds[1]).toEqual([5, 6, 9, 0]);
    expect(r.lengths).toEqual([4, 3]);
  });

  it("pads to a multiple when asked", () => {
    const b = collateDpo(pairs, { padTokenId: 0, padToMultipleOf: 8 });
    expect(b.inputIds.every((r) => r.length === 8)).toBe(true);
    expect(b.inputIds[0]!.slice(4)).toEqual([0, 0, 0, 0]);
  });
});

describe("collateReward", () => {
  it("gives lengths and last-token indices from lengths, not pad ids", () => {
    const b = collateReward(
      pairs.map((p) => ({ ...p, margin: 0.25 })),
      { padTokenId: EOS },
    );
    expect(b.lengths).toEqual([4, 2, 5, 4]);
    expect(b.lastTokenIndex).toEqual([3, 1, 4, 3]);
    expect(b.attentionMask[1]).toEqual([1, 1, 0, 0, 0]);
    expect(b.margins).toEqual([0.25, 0.25]);
  });
});

describe("collateSft", () => {
  const rows = [
    { promptIds: [5, 6], completionIds: [7, EOS] },
    { promptIds: [], completionIds: [8, EOS, EOS] },
  ];
  it("masks labels to the completion by default, and to real tokens otherwise", () => {
    const b = collateSft(rows, { padTokenId: EOS });
    expect(b.inputIds).toEqual([
      [5, 6, 7, EOS],
      [8, EOS, EOS, EOS],
    ]);
    expect(b.labels).toEqual([
      [-100, -100, 7, EOS],
      [8, EOS, EOS, -100],
    ]);
    const full = collateSft(rows, { padTokenId: EOS, completionOnlyLoss: false, ignoreIndex: -1 });
    expect(full.labels).toEqual([
      [5, 6, 7, EOS],
      [8, EOS, EOS, -1],
    ]);
    expect(full.attentionMask).toEqual([
      [1, 1, 1, 1],
      [1, 1, 1, 0],
    ]);
  });

  it("refuses an empty batch", () => {
    expect(() => collateSft([], { padTokenId: 0 })).toThrow("cannot collate an empty batch");
  });
});
