import { describe, expect, it } from "vitest";
import { convertHhRlhf, parseHhTranscript, rowsFromObjects } from "../../src/data/index.js";

const FILE = "/d/hh.jsonl";
const u = (content: string) => ({ role: "user", content });
const a = (content: string) => ({ role: "assistant", content });

describe("parseHhTranscript", () => {
  it("splits Human/Assistant turns and removes the space after each marker", () => {
    expect(parseHhTranscript("\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Bye")).toEqual([
      u("Hi there"),
      a("Hello!"),
      u("Bye"),
    ]);
    expect(parseHhTranscript("no markers")).toBeUndefined();
  });
});

describe("convertHhRlhf", () => {
  const t = (...turns: string[]) => turns.map((x, i) => `\n\n${i % 2 === 0 ? "Human" : "Assistant"}: ${x}`).join("");

  it("backs the common prefix off to the last Assistant marker, even when the replies share a start", () => {
    const rows = rowsFromObjects(
      [{ chosen: t("Q1", "A1", "Q2", "It is fine."), rejected: t("Q1", "A1", "Q2", "It is bad.") }],
      FILE,
    );
    const { examples, report } = convertHhRlhf(rows);
    expect(examples).toEqual([
      {
        prompt: [u("Q1"), a("A1"), u("Q2")],
        chosen: [a("It is fine.")],
        rejected: [a("It is bad.")],
        source: { file: FILE, row: 1 },
      },
    ]);
    expect(report).toMatchObject({ rowsIn: 1, rowsOut: 1, droppedRows: [] });
  });

  it("counts drops by reason (skip by default) and throws naming the row with onBadRow: error", () => {
    const rows = rowsFromObjects(
      [
        { chosen: t("Q", "good"), rejected: t("Q", "bad") },
        { chosen: t("Q", "A", "Q2", "x"), rejected: t("Q", "B", "Q2", "y") }, // diverge earlier
        { chosen: t("Q", ""), rejected: t("Q", "bad") }, // empty chosen
        { chosen: "plain text", rejected: "plain texts" }, // no markers
        { chosen: t("Q", "good") }, // missing rejected
      ],
      FILE,
    );
    const warnings: string[] = [];
    const out = convertHhRlhf(rows, { warn: (m) => warnings.push(m) });
    expect(out.report).toMatchObject({
      rowsIn: 5,
      rowsOut: 1,
      dropped: { "diverge before final turn": 1, "empty completion": 1, "no shared prompt": 1, "missing field": 1 },
    });
    expect(warnings).toHaveLength(1);
    expect(convertHhRlhf(rows, { keepEmptyCompletions: true, warn: () => {} }).report.rowsOut).toBe(2);
    expect(() => convertHhRlhf(rows.slice(1), { onBadRow: "error" })).toThrow(
      `${FILE}, row 2: chosen and rejected diverge before their final assistant turn`,
    );
    expect(() => convertHhRlhf([])).toThrow("dataset is empty (no rows)");
    expect(() => convertHhRlhf(rows.slice(3, 4), { warn: () => {} })).toThrow(
      `${FILE}: no HH-RLHF row converted (1 in)`,
    );
  });
});
