import { ConfigError } from "@prefkit/core";
import { AutoTokenizer, type PreTrainedTokenizer, padSequences, truncateSequence } from "@prefkit/models";
import { beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";

const dir = sharedPath("assets/stories260K");

// Ids recorded in stories260K/fixtures.json (BOS = 1 first).
const HELLO = [1, 346, 306, 414, 263, 304, 341];
const LILY = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];
const TEXTS = ["Hello world", "Once upon a time, there was a little girl named Lily."];

describe("padSequences / truncateSequence", () => {
  it("masks by length, so a pad id equal to a real eos is not masked", () => {
    const out = padSequences(
      [
        [5, 2],
        [5, 6, 7, 2],
      ],
      { padTokenId: 2, paddingSide: "right" },
    );
    expect(out.inputIds).toEqual([
      [5, 2, 2, 2],
      [5, 6, 7, 2],
    ]);
    expect(out.attentionMask).toEqual([
      [1, 1, 0, 0],
      [1, 1, 1, 1],
    ]);
    const left = padSequences(
      [
        [5, 2],
        [5, 6, 7, 2],
      ],
      { padTokenId: 2, paddingSide: "left" },
    );
    expect(left.inputIds).toEqual([
      [2, 2, 5, 2],
      [5, 6, 7, 2],
    ]);
    expect(left.attentionMask).toEqual([
      [0, 0, 1, 1],
      [1, 1, 1, 1],
    ]);
  });

  it("pads to maxLength and to a multiple; rejects bad lengths", () => {
    expect(padSequences([[1]], { padTokenId: 0, maxLength: 3 }).inputIds).toEqual([[1, 0, 0]]);
    expect(padSequences([[1, 2, 3]], { padTokenId: 0, padToMultipleOf: 4 }).inputIds).toEqual([[1, 2, 3, 0]]);
    expect(() => padSequences([[1]], { padTokenId: 0, maxLength: 0 })).toThrow(ConfigError);
    expect(truncateSequence([1, 2, 3, 4], 2, "right")).toEqual([1, 2]);
    expect(truncateSequence([1, 2, 3, 4], 2, "left")).toEqual([3, 4]);
    expect(() => truncateSequence([1], -1)).toThrow(ConfigError);
  });
});

describe.skipIf(!dir)("PreTrainedTokenizer.encodeBatch on stories260K", () => {
  let tok: PreTrainedTokenizer;
  beforeAll(async () => {
    tok = await AutoTokenizer.fromPretrained(dir!);
  });

  it("refuses to pad without a pad token, and says how to fix it", async () => {
    const fresh = await AutoTokenizer.fromPretrained(dir!);
    expect(() => fresh.encodeBatch(TEXTS)).toThrow(/ensurePadToken/);
    expect(fresh.encodeBatch(TEXTS, { padding: false }).inputIds).toEqual([HELLO, LILY]);
  });

  it("pads right (tokenizer_config padding_side) and left", () => {
    tok.ensurePadToken();
    const right = tok.encodeBatch(TEXTS);
    expect(right.inputIds).toEqual([[...HELLO, ...Array(9).fill(2)], LILY]);
    expect(right.attentionMask).toEqual([[...Array(7).fill(1), ...Array(9).fill(0)], Array(16).fill(1)]);
    const left = tok.encodeBatch(TEXTS, { paddingSide: "left" });
    expect(left.inputIds).toEqual([[...Array(9).fill(2), ...HELLO], LILY]);
    expect(left.attentionMask[0]).toEqual([...Array(9).fill(0), ...Array(7).fill(1)]);
  });

  it("pads to max_length and to a multiple of 8", () => {
    const out = tok.encodeBatch(TEXTS, { padding: "max_length", maxLength: 20 });
    expect(out.inputIds.map((r) => r.length)).toEqual([20, 20]);
    expect(out.attentionMask.map((r) => r.reduce((a, b) => a + b))).toEqual([7, 16]);
    expect(tok.encodeBatch(["Hello world"], { padToMultipleOf: 8 }).inputIds).toEqual([[...HELLO, 2]]);
    expect(() => tok.encodeBatch(TEXTS, { padding: "max_length" })).toThrow(ConfigError);
  });

  it("truncates right or left, keeping BOS", () => {
    const right = tok.encodeBatch(TEXTS, { truncation: true, maxLength: 5 });
    expect(right.inputIds).toEqual([HELLO.slice(0, 5), LILY.slice(0, 5)]);
    const left = tok.encodeBatch(TEXTS, { truncation: true, maxLength: 5, truncationSide: "left" });
    expect(left.inputIds).toEqual([
      [1, ...HELLO.slice(-4)],
      [1, ...LILY.slice(-4)],
    ]);
    expect(left.attentionMask).toEqual([Array(5).fill(1), Array(5).fill(1)]);
    // Truncate then pad: shorter row padded up to the longest truncated row.
    const both = tok.encodeBatch(TEXTS, { truncation: true, maxLength: 10, paddingSide: "left" });
    expect(both.inputIds).toEqual([[2, 2, 2, ...HELLO], LILY.slice(0, 10)]);
  });

  it("truncation without maxLength uses model_max_length (512)", () => {
    const long = "Once upon a time ".repeat(200);
    const out = tok.encodeBatch([long], { truncation: true });
    expect(out.inputIds[0]).toHaveLength(512);
    expect(out.inputIds[0]![0]).toBe(1);
    expect(() => tok.encodeBatch(TEXTS, { truncation: true, maxLength: 0 })).toThrow(/no room/);
  });

  it("pad() pads pre-tokenized rows with the tokenizer's pad id and side", () => {
    const out = tok.pad([[1, 2], [1]], { paddingSide: "left" });
    expect(out).toEqual({
      inputIds: [
        [1, 2],
        [2, 1],
      ],
      attentionMask: [
        [1, 1],
        [0, 1],
      ],
    });
  });
});
