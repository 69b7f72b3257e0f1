import { describe, expect, it } from "vitest";
import {
  type PreferenceExample,
  specialPrefixIds,
  tokenizeCompletionDataset,
  tokenizePreferenceDataset,
} from "../../src/data/index.js";
import { DatasetError } from "../../src/errors/index.js";
import { BOS, CharTokenizer, EOS } from "./tokenizers.js";

const src = (row: number) => ({ file: "/d.jsonl", row });
const u = (content: string) => ({ role: "user", content });
const a = (content: string) => ({ role: "assistant", content });
const quiet = { warn: () => {} };

describe("tokenizePreferenceDataset: standard style", () => {
  const tok = new CharTokenizer({ addBos: true });
  const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });

  it("encodes prompt with special tokens, completions without, plus eos", () => {
    expect(specialPrefixIds(tok)).toEqual([BOS]);
    const { examples, report } = tokenizePreferenceDataset([{ prompt: "Hi", chosen: " yo", rejected: " no!" }], tok);
    expect(examples[0]).toEqual({
      promptIds: [BOS, ...enc("Hi")],
      chosenIds: [...enc(" yo"), EOS],
      rejectedIds: [...enc(" no!"), EOS],
    });
    expect(report).toMatchObject({ rowsIn: 1, rowsOut: 1, truncated: 0 });
  });

  it("does not double a BOS the text already has", () => {
    const { examples } = tokenizePreferenceDataset([{ prompt: "<s>Hi", chosen: "a", rejected: "b" }], tok);
    expect(examples[0]!.promptIds).toEqual([BOS, ...enc("Hi")]);
  });

  it("truncates completions keeping the start, prompts keeping the end, and drops prompts reaching maxLength", () => {
    const ex: PreferenceExample[] = [
      { prompt: "abcdef", chosen: "0123456789", rejected: "xy", source: src(1) }, // prompt 7 tokens with BOS
      { prompt: "a".repeat(11), chosen: "c", rejected: "r", source: src(2) }, // prompt 12 ≥ 12: dropped
      { prompt: "p", chosen: "c", rejected: "r", source: src(3) }, // untouched
    ];
    const warnings: string[] = [];
    const { examples, report } = tokenizePreferenceDataset(ex, tok, { maxLength: 12, warn: (m) => warnings.push(m) });
    expect(examples).toHaveLength(2);
    expect(examples[0]!.promptIds).toEqual([BOS, ...enc("abcdef")]);
    expect(examples[0]!.chosenIds).toEqual(enc("01234")); // 12 - 7 = 5 tokens; eos cut off
    expect(examples[0]!.rejectedIds).toEqual([...enc("xy"), EOS]);
    expect(report).toMatchObject({ rowsIn: 3, rowsOut: 2, truncated: 1, dropped: { "prompt reaches maxLength": 1 } });
    expect(report.droppedRows).toEqual([{ file: "/d.jsonl", row: 2, reason: "prompt reaches maxLength" }]);
    expect(warnings).toEqual(["tokenize: 3 rows in, 2 out, 1 dropped (prompt reaches maxLength: 1), 1 truncated"]);

    // maxPromptLength keeps the END of the prompt, so the long prompt now fits.
    const kept = tokenizePreferenceDataset(ex, tok, { maxLength: 12, maxPromptLength: 4, ...quiet });
    expect(kept.examples).toHaveLength(3);
    expect(kept.examples[1]!.promptIds).toEqual(enc("aaaa"));
    expect(kept.examples[0]!.promptIds).toEqual(enc("cdef"));
    expect(kept.examples[0]!.chosenIds).toEqual(enc("01234567"));

    // Reward-model mode: over-long rows are dropped, not truncated.
    const drop = tokenizePreferenceDataset(ex, tok, { maxLength: 12, overlong: "drop", ...quiet });
    expect(drop.report.dropped).toEqual({ "prompt reaches maxLength": 1, "exceeds maxLength": 1 });
    expect(drop.examples.map((e) => e.source!.row)).toEqual([3]);
  });

  it("keep_end keeps each sequence's last maxLength tokens and drops nothing (TRL's ids[-max_length:])", () => {
    const ex: PreferenceExample[] = [
      // chosen 6 tokens (5 + eos): prompt keeps 10 - 6 = 4; rejected 3 tokens: prompt keeps all 7
      { prompt: "abcdef", chosen: "01234", rejected: "xy", source: src(1) },
      // prompt 12 tokens ≥ maxLength: kept (keep_start drops it); completions whole, prompts cut apart
      { prompt: "a".repeat(11), chosen: "c", rejected: "rs", source: src(2) },
      // a completion longer than maxLength keeps its END; its prompt keeps nothing
      { prompt: "p", chosen: "0123456789AB", rejected: "r", source: src(3) },
      { prompt: "p", chosen: "c", rejected: "r", source: src(4) }, // untouched
    ];
    const warnings: string[] = [];
    const { examples, report } = tokenizePreferenceDataset(ex, tok, {
      maxLength: 10,
      truncationMode: "keep_end",
      warn: (m) => warnings.push(m),
    });
    expect(examples.map((e) => e.source!.row)).toEqual([1, 2, 3, 4]);
    expect(examples[0]).toEqual({
      promptIds: enc("cdef"),
      chosenIds: [...enc("01234"), EOS],
      rejectedIds: [...enc("xy"), EOS],
      rejectedPromptIds: [BOS, ...enc("abcdef")],
      source: src(1),
    });
    expect(examples[1]).toEqual({
      promptIds: enc("a".repeat(8)),
      chosenIds: [...enc("c"), EOS],
      rejectedIds: [...enc("rs"), EOS],
      rejectedPromptIds: enc("a".repeat(7)),
      source: src(2),
    });
    expect(examples[2]).toEqual({
      promptIds: [],
      chosenIds: [...enc("3456789AB"), EOS],
      rejectedIds: [...enc("r"), EOS],
      rejectedPromptIds: [BOS, ...enc("p")],
      source: src(3),
    });
    expect(examples[3]).toEqual({
      promptIds: [BOS, ...enc("p")],
      chosenIds: [...enc("c"), EOS],
      rejectedIds: [...enc("r"), EOS],
      source: src(4),
    });
    for (const e of examples) {
      expect(e.promptIds.length + e.chosenIds.length).toBeLessThanOrEqual(10);
      expect((e.rejectedPromptIds ?? e.promptIds).length + e.rejectedIds.length).toBeLessThanOrEqual(10);
    }
    expect(report).toMatchObject({ rowsIn: 4, rowsOut: 4, truncated: 3, dropped: {} });
    expect(warnings).toEqual([]);
    // keep_start on the same rows: the long prompt is dropped, completions lose their end
    const start = tokenizePreferenceDataset(ex, tok, { maxLength: 10, ...quiet });
    expect(start.examples.map((e) => e.source!.row)).toEqual([1, 3, 4]);
    expect(start.examples[0]!.chosenIds).toEqual(enc("012"));
    // maxPromptLength still applies first (and counts as truncation) when maxLength cuts nothing more
    const short = tokenizePreferenceDataset([{ prompt: "abcdef", chosen: "c", rejected: "r" }], tok, {
      maxLength: 10,
      maxPromptLength: 3,
      truncationMode: "keep_end",
      ...quiet,
    });
    expect(short.examples[0]).toEqual({
      promptIds: enc("def"),
      chosenIds: [...enc("c"), EOS],
      rejectedIds: [...enc("r"), EOS],
    });
    expect(short.report.truncated).toBe(1);
    // over-long rows of reward modelling are still dropped whatever the mode
    const drop = tokenizePreferenceDataset(ex, tok, {
      maxLength: 10,
      truncationMode: "keep_end",
      overlong: "drop",
      ...quiet,
    });
    expect(drop.examples.map((e) => e.source!.row)).toEqual([4]);
  });

  it("defaults maxLength to 1024 and throws when nothing survives", () => {
    const long = { prompt: "x".repeat(1023), chosen: "c", rejected: "r", source: src(1) };
    const err = (() => {
      try {
        tokenizePreferenceDataset([long], tok, quiet);
      } catch (e) {
        return e as DatasetError;
      }
    })();
    expect(err).toBeInstanceOf(DatasetError);
    expect(err!.message).toBe("/d.jsonl: no row survived tokenisation (1 in)");
    expect(tokenizePreferenceDataset([long], tok, { maxLength: null }).examples).toHaveLength(1);
  });
});

describe("tokenizePreferenceDataset: conversational style", () => {
  const ex: PreferenceExample = {
    prompt: [u("hi")],
    chosen: [a("yo")],
    rejected: [a("no")],
    source: src(5),
  };

  it("splits in token space with a generation prompt, and the completion keeps the turn end", () => {
    const tok = new CharTokenizer();
    const enc = (s: string) => tok.encode(s);
    const { examples } = tokenizePreferenceDataset([ex], tok);
    expect(examples[0]!.promptIds).toEqual(enc("user:hi</s>assistant:"));
    expect(examples[0]!.chosenIds).toEqual(enc("yo</s>"));
    expect(examples[0]!.rejectedIds).toEqual(enc("no</s>"));
  });

  it("does not double BOS when both the template and the post-processor would add one", () => {
    const tok = new CharTokenizer({ addBos: true, templateBos: true });
    const { examples } = tokenizePreferenceDataset([ex], tok);
    const ids = examples[0]!.promptIds;
    expect(ids[0]).toBe(BOS);
    expect(ids[1]).not.toBe(BOS);
    // A template without BOS on a tokenizer that adds one: the post-processor's BOS is added once.
    const tok2 = new CharTokenizer({ addBos: true });
    expect(tokenizePreferenceDataset([ex], tok2).examples[0]!.promptIds.slice(0, 2)).toEqual([
      BOS,
      tok2.encode("u", { addSpecialTokens: false })[0],
    ]);
  });

  it("rejects a template that is not prefix-preserving, naming the row, or counts it under skip", () => {
    const tok = new CharTokenizer({ unstable: true });
    expect(() => tokenizePreferenceDataset([ex], tok)).toThrow(
      /^\/d\.jsonl, row 5, field "chosen": the rendered prompt's \d+ tokens are not a prefix/,
    );
    const ok = { ...ex, prompt: [u("HI")], source: src(6) }; // upper-case already: stable
    const out = tokenizePreferenceDataset([ex, ok], tok, { onPrefixMismatch: "skip", ...quiet });
    expect(out.report).toMatchObject({ rowsIn: 2, rowsOut: 1, dropped: { "prompt not a token prefix": 1 } });
    expect(out.examples[0]!.source!.row).toBe(6);
  });

  it("rejects rows mixing strings and messages", () => {
    const mixed = { prompt: "p", chosen: [a("c")], rejected: [a("r")], source: src(9) } as unknown as PreferenceExample;
    expect(() => tokenizePreferenceDataset([mixed], new CharTokenizer())).toThrow(
      "/d.jsonl, row 9: prompt, chosen and rejected mix strings and message lists",
    );
  });
});

describe("tokenizeCompletionDataset", () => {
  it("handles prompt-completion and language-modelling rows in both styles", () => {
    const tok = new CharTokenizer({ addBos: true });
    const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });
    const { examples } = tokenizeCompletionDataset(
      [
        { prompt: "Q", completion: "A" },
        { prompt: "", completion: "text" },
        { prompt: [], completion: [u("hi"), a("yo")] },
        { prompt: [u("hi")], completion: [a("yo")] },
      ],
      tok,
    );
    expect(examples[0]).toEqual({ promptIds: [BOS, ...enc("Q")], completionIds: [...enc("A"), EOS] });
    expect(examples[1]).toEqual({ promptIds: [], completionIds: [BOS, ...enc("text"), EOS] });
    expect(examples[2]).toEqual({ promptIds: [], completionIds: [BOS, ...enc("user:hi</s>assistant:yo</s>")] });
    expect(examples[3]).toEqual({ promptIds: [BOS, ...enc("user:hi</s>assistant:")], completionIds: enc("yo</s>") });
  });
});
