import { describe, expect, it } from "vitest";
import {
  detectFormat,
  extractPrompt,
  prepareCompletionDataset,
  preparePreferenceDataset,
  rowsFromObjects,
} from "../../src/data/index.js";
import { thrown } from "./errors.js";

const FILE = "/data/prefs.jsonl";
const rows = (objs: Record<string, unknown>[]) => rowsFromObjects(objs, FILE);
const u = (content: string) => ({ role: "user", content });
const a = (content: string) => ({ role: "assistant", content });

describe("detectFormat", () => {
  it("detects TRL's kinds and styles from the columns", () => {
    expect(detectFormat(rows([{ prompt: "p", chosen: "c", rejected: "r" }]))).toEqual({
      kind: "preference",
      style: "standard",
    });
    expect(detectFormat(rows([{ chosen: [u("x")], rejected: [u("y")] }]))).toEqual({
      kind: "implicit_preference",
      style: "conversational",
    });
    expect(detectFormat(rows([{ prompt: [u("p")], completion: [a("c")] }]))).toEqual({
      kind: "prompt_completion",
      style: "conversational",
    });
    expect(detectFormat(rows([{ text: "t" }]))).toEqual({ kind: "language_modeling", style: "standard" });
    expect(detectFormat(rows([{ messages: [u("t")] }]))).toEqual({
      kind: "language_modeling",
      style: "conversational",
    });
    expect(detectFormat(rows([{ prompt: "p" }]))).toEqual({ kind: "prompt_only", style: "standard" });
  });

  it("is not fooled by one malformed first row", () => {
    const r = rows([
      { chosen: "c", rejected: "r" },
      ...Array.from({ length: 5 }, () => ({ prompt: "p", chosen: "c", rejected: "r" })),
    ]);
    expect(detectFormat(r).kind).toBe("preference");
  });

  it("rejects empty and unrecognisable datasets", () => {
    expect(thrown(() => detectFormat([])).message).toBe("dataset is empty (no rows)");
    expect(thrown(() => detectFormat(rows([{ foo: 1 }]))).message).toMatch(/^\/data\/prefs\.jsonl: cannot detect/);
  });
});

describe("extractPrompt", () => {
  it("takes the common character prefix and moves a trailing space into the completions (TRL)", () => {
    expect(extractPrompt("The sky is blue.", "The sky is green.")).toEqual({
      prompt: "The sky is",
      chosen: " blue.",
      rejected: " green.",
    });
    // Split not after a space: nothing moves.
    expect(extractPrompt("Answer: yes", "Answer: yep")).toEqual({ prompt: "Answer: ye", chosen: "s", rejected: "p" });
    // No common prefix.
    expect(extractPrompt("abc", "xyz")).toEqual({ prompt: "", chosen: "abc", rejected: "xyz" });
  });

  it("takes the common prefix per message for conversations", () => {
    const chosen = [u("What color is the sky?"), a("It is blue.")];
    const rejected = [u("What color is the sky?"), a("It is green.")];
    expect(extractPrompt(chosen, rejected)).toEqual({
      prompt: [u("What color is the sky?")],
      chosen: [a("It is blue.")],
      rejected: [a("It is green.")],
    });
    // Messages that share a text prefix but differ are not split inside.
    expect(extractPrompt([u("hi"), a("It is")], [u("hi"), a("It is not")]).prompt).toEqual([u("hi")]);
  });
});

describe("preparePreferenceDataset", () => {
  it("normalises explicit and implicit rows and keeps provenance and margins", () => {
    const exp = preparePreferenceDataset(rows([{ prompt: "p", chosen: "c", rejected: "r", margin: 0.5 }]));
    expect(exp.examples).toEqual([
      { prompt: "p", chosen: "c", rejected: "r", margin: 0.5, source: { file: FILE, row: 1 } },
    ]);
    const imp = preparePreferenceDataset(rows([{ chosen: "Q? yes", rejected: "Q? no" }]));
    expect(imp.format.kind).toBe("implicit_preference");
    expect(imp.examples[0]).toMatchObject({ prompt: "Q?", chosen: " yes", rejected: " no" });
  });

  const bad = [
    { prompt: "p", chosen: "c", rejected: "r" },
    { prompt: "p", chosen: "c" }, // row 2: missing rejected
    { prompt: "p", chosen: 7, rejected: "r" }, // row 3: wrong type
    { prompt: "p", chosen: "  ", rejected: "r" }, // row 4: empty completion
    { prompt: "p", chosen: "c", rejected: "r", margin: "big" }, // row 5: bad margin
    { prompt: "p", chosen: "c", rejected: "r" },
  ];

  it("throws a DatasetError naming file, row and field for each kind of malformed row", () => {
    expect(thrown(() => preparePreferenceDataset(rows(bad))).message).toBe(
      `${FILE}, row 2, field "rejected": missing field`,
    );
    expect(thrown(() => preparePreferenceDataset(rows([bad[0]!, bad[2]!]))).message).toBe(
      `${FILE}, row 2, field "chosen": expected a string, got a number`,
    );
    const e = thrown(() => preparePreferenceDataset(rows([bad[3]!])));
    expect(e.message).toBe(`${FILE}, row 1, field "chosen": empty completion`);
    expect(e.row).toBe(1);
    expect(thrown(() => preparePreferenceDataset(rows([bad[4]!]))).message).toBe(
      `${FILE}, row 1, field "margin": expected a finite number, got a string`,
    );
    const conv = rows([{ prompt: [u("p")], chosen: [{ role: "assistant" }], rejected: [a("r")] }]);
    expect(thrown(() => preparePreferenceDataset(conv)).message).toBe(
      `${FILE}, row 1, field "chosen": message 0 has no string "content"`,
    );
    // An implicit row whose chosen transcript is the shared prompt has an empty completion.
    expect(
      thrown(() => preparePreferenceDataset(rows([{ chosen: [u("x")], rejected: [u("x"), a("y")] }]))).message,
    ).toBe(`${FILE}, row 1, field "chosen": empty completion`);
    // Identical transcripts are a chosen == rejected pair (dropped by default; named under identicalPairs "error").
    const same = rows([{ chosen: [u("x")], rejected: [u("x")] }]);
    expect(thrown(() => preparePreferenceDataset(same, { identicalPairs: "error" })).message).toBe(
      `${FILE}, row 1: chosen and rejected are the same: the pair has no preference`,
    );
  });

  it("drops and counts malformed rows under onBadRow: skip", () => {
    const warnings: string[] = [];
    const out = preparePreferenceDataset(rows(bad), { onBadRow: "skip", warn: (m) => warnings.push(m) });
    expect(out.examples.map((e) => e.source!.row)).toEqual([1, 6]);
    expect(out.report).toMatchObject({
      rowsIn: 6,
      rowsOut: 2,
      dropped: { "missing field": 1, "wrong type": 2, "empty completion": 1 },
    });
    expect(out.report.droppedRows.map((d) => d.row)).toEqual([2, 3, 4, 5]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("4 dropped");
  });

  it("errors clearly on an empty dataset, an all-bad dataset, or the wrong kind", () => {
    expect(thrown(() => preparePreferenceDataset([])).message).toBe("dataset is empty (no rows)");
    expect(thrown(() => preparePreferenceDataset(rows([bad[2]!]), { onBadRow: "skip", warn: () => {} })).message).toBe(
      `${FILE}: dataset has no usable rows (1 in, all dropped)`,
    );
    expect(thrown(() => preparePreferenceDataset(rows([{ text: "t" }]))).message).toContain("found language_modeling");
  });
});

describe("prepareCompletionDataset", () => {
  it("reads prompt-completion and language-modelling rows", () => {
    expect(prepareCompletionDataset(rows([{ prompt: "p", completion: "c" }])).examples[0]).toMatchObject({
      prompt: "p",
      completion: "c",
    });
    expect(prepareCompletionDataset(rows([{ text: "hello" }])).examples[0]).toMatchObject({
      prompt: "",
      completion: "hello",
    });
    expect(prepareCompletionDataset(rows([{ messages: [u("hi"), a("yo")] }])).examples[0]).toMatchObject({
      prompt: [],
      completion: [u("hi"), a("yo")],
    });
    expect(thrown(() => prepareCompletionDataset(rows([{ prompt: "p", completion: "" }]))).message).toBe(
      `${FILE}, row 1, field "completion": empty completion`,
    );
  });
});
