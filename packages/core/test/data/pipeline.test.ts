import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { buildPreferenceDataset, collateDpo } from "../../src/data/index.js";
import { CharTokenizer, EOS } from "./tokenizers.js";

const dir = mkdtempSync(join(tmpdir(), "prefkit-pipe-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("buildPreferenceDataset", () => {
  it("takes an HH-RLHF style JSONL.gz file to token ids, with per-stage reports", async () => {
    const t = (...turns: string[]) => turns.map((x, i) => `\n\n${i % 2 === 0 ? "Human" : "Assistant"}: ${x}`).join("");
    const lines = [
      { chosen: t("Hi", "Hello!"), rejected: t("Hi", "Go away.") },
      { chosen: t("Q", "A", "Q2", "yes"), rejected: t("Q", "B", "Q2", "no") }, // dropped: diverge early
      { chosen: t("Tea?", "Yes please."), rejected: t("Tea?", "No.") },
    ];
    const file = join(dir, "hh.jsonl.gz");
    writeFileSync(file, gzipSync(lines.map((l) => JSON.stringify(l)).join("\n")));
    const tok = new CharTokenizer();
    const warnings: string[] = [];
    const out = await buildPreferenceDataset(file, tok, { warn: (m) => warnings.push(m) });
    expect(out.hhRlhf).toBe(true);
    expect(out.format).toEqual({ kind: "preference", style: "conversational" });
    expect(out.reports.map((r) => [r.stage, r.rowsIn, r.rowsOut])).toEqual([
      ["load", 3, 3],
      ["hh-rlhf", 3, 2],
      ["tokenize", 2, 2],
    ]);
    expect(warnings).toEqual(["hh-rlhf: 3 rows in, 2 out, 1 dropped (diverge before final turn: 1)"]);
    expect(out.examples.map((e) => e.source!.row)).toEqual([1, 3]);
    expect(tok.decode(out.examples[0]!.promptIds)).toBe("user:Hi</s>assistant:");
    expect(tok.decode(out.examples[0]!.chosenIds)).toBe("Hello!</s>");
    const batch = collateDpo(out.examples, { padTokenId: EOS });
    expect(batch.completionLengths).toEqual([7, 12, 9, 4]); // "Hello!</s>", "Yes please.</s>", "Go away.</s>", "No.</s>";
  });

  it("uses TRL formats for other files", async () => {
    const file = join(dir, "p.json");
    writeFileSync(file, JSON.stringify([{ prompt: "Q", chosen: "a", rejected: "b" }]));
    const out = await buildPreferenceDataset(file, new CharTokenizer({ addBos: true }), { tokenize: { maxLength: 8 } });
    expect(out.hhRlhf).toBe(false);
    expect(out.examples[0]!.chosenIds.at(-1)).toBe(EOS);
  });
});
