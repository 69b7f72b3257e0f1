import { describe, expect, it } from "vitest";
import {
  isUnpairedPreferenceDataset,
  klMismatchedCompletions,
  prepareUnpairedDataset,
  rowsFromObjects,
  tokenizeCompletionDataset,
  tokenizeUnpairedDataset,
  UNPAIR_BATCH_SIZE,
  type UnpairedExample,
  unpairPreferenceDataset,
  unpairPreferences,
} from "../../src/data/index.js";
import { ConfigError } from "../../src/errors/index.js";
import { thrown } from "./errors.js";
import { BOS, CharTokenizer, EOS } from "./tokenizers.js";

const FILE = "/data/kto.jsonl";
const rows = (objs: Record<string, unknown>[]) => rowsFromObjects(objs, FILE);
const u = (content: string) => ({ role: "user", content });
const a = (content: string) => ({ role: "assistant", content });
const quiet = { warn: () => {} };

describe("unpaired preference rows {prompt, completion, label}", () => {
  it("are told apart from plain prompt-completion data by the label column", () => {
    expect(isUnpairedPreferenceDataset(rows([{ prompt: "p", completion: "c", label: true }]))).toBe(true);
    expect(isUnpairedPreferenceDataset(rows([{ prompt: "p", completion: "c" }]))).toBe(false);
    expect(isUnpairedPreferenceDataset(rows([{ prompt: "p", chosen: "c", rejected: "r" }]))).toBe(false);
  });

  it("normalise in both styles, keeping the label (true/false, or 1/0) and the provenance", () => {
    const standard = prepareUnpairedDataset(
      rows([
        { prompt: "The sky is", completion: " blue.", label: true },
        { prompt: "The sky is", completion: " green.", label: 0 },
      ]),
    );
    expect(standard.fromPairs).toBe(false);
    expect(standard.format).toEqual({ kind: "prompt_completion", style: "standard" });
    expect(standard.examples).toEqual([
      { prompt: "The sky is", completion: " blue.", label: true, source: { file: FILE, row: 1 } },
      { prompt: "The sky is", completion: " green.", label: false, source: { file: FILE, row: 2 } },
    ]);
    const conv = prepareUnpairedDataset(rows([{ prompt: [u("hi")], completion: [a("yo")], label: false }]));
    expect(conv.format.style).toBe("conversational");
    expect(conv.examples[0]).toMatchObject({ prompt: [u("hi")], completion: [a("yo")], label: false });
  });

  it("name the row and field of a missing or non-boolean label, a wrong type and an empty completion", () => {
    const good = { prompt: "p", completion: "c", label: true };
    const missing = thrown(() =>
      prepareUnpairedDataset(rows([good, good, { prompt: "p", completion: "c", label: null }])),
    );
    expect(missing.location).toEqual({ file: FILE, row: 3, field: "label" });
    expect(missing.message).toBe(`${FILE}, row 3, field "label": missing field`);
    const wrong = thrown(() => prepareUnpairedDataset(rows([good, { prompt: "p", completion: "c", label: "yes" }])));
    expect(wrong.location).toEqual({ file: FILE, row: 2, field: "label" });
    expect(wrong.message).toMatch(/expected true or false \(or 1\/0\), got a string$/);
    const prompt = thrown(() => prepareUnpairedDataset(rows([good, { prompt: 7, completion: "c", label: true }])));
    expect(prompt.location).toEqual({ file: FILE, row: 2, field: "prompt" });
    const empty = thrown(() => prepareUnpairedDataset(rows([good, { prompt: "p", completion: "  ", label: true }])));
    expect(empty.location).toEqual({ file: FILE, row: 2, field: "completion" });
  });

  it("skip and count bad rows with onBadRow: skip", () => {
    const out = prepareUnpairedDataset(
      rows([
        { prompt: "p", completion: "c", label: true },
        { prompt: "p", completion: "c", label: 2 },
        { prompt: "p", completion: "", label: false },
      ]),
      { onBadRow: "skip", ...quiet },
    );
    expect(out.examples).toHaveLength(1);
    expect(out.report.dropped).toEqual({ "wrong type": 1, "empty completion": 1 });
  });

  it("reject data that is neither unpaired nor paired preference data", () => {
    expect(thrown(() => prepareUnpairedDataset(rows([{ prompt: "p", completion: "c" }]))).message).toMatch(
      /^\/data\/kto\.jsonl: expected unpaired preference rows .* found prompt_completion without a label column$/,
    );
    expect(thrown(() => prepareUnpairedDataset(rows([{ text: "t" }]))).message).toMatch(/found language_modeling$/);
  });
});

describe("unpairPreferenceDataset (TRL unpair_preference_dataset)", () => {
  const pairs = [
    { prompt: "The sky is", chosen: " blue.", rejected: " green." },
    { prompt: "The sun is", chosen: " in the sky.", rejected: " in the sea." },
    { prompt: "Grass is", chosen: " green.", rejected: " blue." },
  ];

  it("turns each pair into a desirable and an undesirable row, chosen rows of a block first", () => {
    const out = unpairPreferenceDataset(rows(pairs));
    expect(out.fromPairs).toBe(true);
    expect(out.examples.map((e) => [e.prompt, e.completion, e.label, e.source?.row])).toEqual([
      ["The sky is", " blue.", true, 1],
      ["The sun is", " in the sky.", true, 2],
      ["Grass is", " green.", true, 3],
      ["The sky is", " green.", false, 1],
      ["The sun is", " in the sea.", false, 2],
      ["Grass is", " blue.", false, 3],
    ]);
    expect(UNPAIR_BATCH_SIZE).toBe(1000);
  });

  it("blocks follow TRL's map batches", () => {
    const out = unpairPreferenceDataset(rows(pairs), { unpairBatchSize: 2 });
    expect(out.examples.map((e) => `${e.source?.row}${e.label ? "+" : "-"}`)).toEqual([
      "1+",
      "2+",
      "1-",
      "2-",
      "3+",
      "3-",
    ]);
  });

  it("extracts implicit prompts first (conversational too), and prepareUnpairedDataset unpairs pairs", () => {
    const implicit = unpairPreferenceDataset(rows([{ chosen: "Q: hi A: yo", rejected: "Q: hi A: no" }]));
    expect(implicit.examples.map((e) => [e.prompt, e.completion, e.label])).toEqual([
      ["Q: hi A:", " yo", true],
      ["Q: hi A:", " no", false],
    ]);
    const conv = prepareUnpairedDataset(rows([{ chosen: [u("hi"), a("yo")], rejected: [u("hi"), a("no")] }]));
    expect(conv.fromPairs).toBe(true);
    expect(conv.examples).toMatchObject([
      { prompt: [u("hi")], completion: [a("yo")], label: true },
      { prompt: [u("hi")], completion: [a("no")], label: false },
    ]);
  });

  it("names the row and field of a malformed pair", () => {
    const err = thrown(() => unpairPreferenceDataset(rows([pairs[0]!, { prompt: "p", chosen: "c", rejected: 3 }])));
    expect(err.location).toEqual({ file: FILE, row: 2, field: "rejected" });
    expect(
      thrown(() => unpairPreferenceDataset(rows([{ prompt: "p", completion: "c", label: true }]))).message,
    ).toMatch(/expected a preference dataset/);
  });

  it("unpairPreferences works on normalised pairs without provenance", () => {
    expect(unpairPreferences([{ prompt: "p", chosen: "c", rejected: "r" }])).toEqual([
      { prompt: "p", completion: "c", label: true },
      { prompt: "p", completion: "r", label: false },
    ]);
  });
});

describe("tokenizeUnpairedDataset", () => {
  const tok = new CharTokenizer({ addBos: true });
  const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });

  it("tokenises prompt and completion like the completion tokenizer, keeping the label and provenance", () => {
    const examples: UnpairedExample[] = [
      { prompt: "Hi", completion: " yo", label: true, source: { file: FILE, row: 4 } },
      { prompt: "Hi", completion: " no!", label: false },
    ];
    const { examples: out, report } = tokenizeUnpairedDataset(examples, tok);
    expect(out).toEqual([
      {
        promptIds: [BOS, ...enc("Hi")],
        completionIds: [...enc(" yo"), EOS],
        label: true,
        source: { file: FILE, row: 4 },
      },
      { promptIds: [BOS, ...enc("Hi")], completionIds: [...enc(" no!"), EOS], label: false },
    ]);
    expect(report).toMatchObject({ stage: "tokenize", rowsIn: 2, rowsOut: 2 });
    const sft = tokenizeCompletionDataset(examples, tok).examples;
    expect(out.map(({ promptIds, completionIds }) => ({ promptIds, completionIds }))).toEqual(
      sft.map(({ promptIds, completionIds }) => ({ promptIds, completionIds })),
    );
  });

  it("keeps BOS on the prompt side for an empty prompt (TRL's KTO), unlike an SFT language-modelling row", () => {
    const { examples } = tokenizeUnpairedDataset([{ prompt: "", completion: "ok", label: true }], tok);
    expect(examples[0]).toEqual({ promptIds: [BOS], completionIds: [...enc("ok"), EOS], label: true });
  });

  it("splits conversations in token space and truncates completions keeping their start", () => {
    const chat = new CharTokenizer();
    const { examples, report } = tokenizeUnpairedDataset(
      [{ prompt: [u("hi")], completion: [a("hello")], label: false }],
      chat,
      { maxLength: 21 },
    );
    const promptIds = chat.encode("user:hi</s>assistant:");
    expect(examples[0]!.promptIds).toEqual(promptIds);
    expect(examples[0]!.completionIds).toEqual(chat.encode("hello</s>").slice(0, 21 - promptIds.length));
    expect(examples[0]!.label).toBe(false);
    expect(report.truncated).toBe(1);
  });

  it("names the row of a bad example", () => {
    const err = thrown(() =>
      tokenizeUnpairedDataset(
        [{ prompt: "p", completion: [a("x")], label: true, source: { file: FILE, row: 9 } }],
        tok,
      ),
    );
    expect(err.location).toEqual({ file: FILE, row: 9 });
    expect(err.message).toMatch(/mix strings and message lists/);
  });
});

describe("klMismatchedCompletions (TRL _get_kl_dataset)", () => {
  it("gives each row the previous row's completion within its block, the first row the block's last", () => {
    expect(klMismatchedCompletions(["a", "b", "c", "d", "e"], 2)).toEqual(["b", "a", "d", "c", "e"]);
    expect(klMismatchedCompletions([[1], [2], [3]], 3)).toEqual([[3], [1], [2]]);
    expect(() => klMismatchedCompletions(["a"], 0)).toThrow(ConfigError);
  });
});
