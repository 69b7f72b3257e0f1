/**
 * The pipeline on real data: Anthropic HH-RLHF harmless-base (test split) and Human-Like-DPO, tokenised with
 * SmolLM2's real tokenizer and a ChatML template. Never print row contents: HH-RLHF is red-team data.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import {
  collateDpo,
  convertHhRlhf,
  formatDataReport,
  loadDataset,
  type PreferenceExample,
  preparePreferenceDataset,
  type Conversation,
  tokenizePreferenceDataset,
} from "../../src/data/index.js";
import type { TokenizerLike } from "../../src/interfaces/index.js";
import { loadSmolLM2 } from "./tokenizers.js";

const hhPath = sharedPath("assets/hh-rlhf/harmless-base-test.jsonl.gz");
const dpoPath = sharedPath("assets/human-like-dpo/dpo_dataset_4_09_2024_more_casual_convs_1k.json");
const tokPath = sharedPath("assets/tokenizers/smollm2/tokenizer.json");

let tok: TokenizerLike;
beforeAll(() => {
  if (tokPath) tok = loadSmolLM2(tokPath);
});

describe.skipIf(!hhPath || !tokPath)("HH-RLHF harmless-base test split", () => {
  let examples: PreferenceExample<Conversation>[];

  it("converts 2,312 transcript pairs: 5 diverge before the final turn, 4 prefer an empty reply", async () => {
    const loaded = await loadDataset(hhPath!);
    expect(loaded.format).toBe("jsonl.gz");
    expect(loaded.report).toMatchObject({ rowsIn: 2312, rowsOut: 2312 });
    const warnings: string[] = [];
    const hh = convertHhRlhf(loaded, { warn: (m) => warnings.push(m) });
    expect(hh.report.rowsIn).toBe(2312);
    expect(hh.report.rowsOut).toBe(2303);
    expect(hh.report.dropped).toEqual({ "diverge before final turn": 5, "empty completion": 4 });
    expect(hh.report.droppedRows.map((d) => d.row)).toEqual([87, 517, 926, 1104, 1255, 1689, 1951, 1953, 2037]);
    expect(warnings).toEqual([
      "hh-rlhf: 2312 rows in, 2303 out, 9 dropped (empty completion: 4, diverge before final turn: 5)",
    ]);
    // Strict mode names the first bad row instead (without quoting it).
    expect(() => convertHhRlhf(loaded, { onBadRow: "error" })).toThrow(
      `${hhPath}, row 87, field "chosen": empty completion`,
    );
    // The README's 2,307 pairs sharing the prompt: keep the empty replies.
    const kept = convertHhRlhf(loaded, { keepEmptyCompletions: true, warn: () => {} });
    expect(kept.report).toMatchObject({ rowsIn: 2312, rowsOut: 2307 });
    examples = kept.examples;
    let nonAlternating = 0;
    for (const ex of examples) {
      expect(ex.prompt[0]!.role).toBe("user");
      expect(ex.prompt.at(-1)!.role).toBe("user");
      if (!ex.prompt.every((m, i) => m.role === (i % 2 === 0 ? "user" : "assistant"))) nonAlternating++;
      expect(ex.chosen).toHaveLength(1);
      expect(ex.chosen[0]!.role).toBe("assistant");
      expect(ex.rejected[0]!.role).toBe("assistant");
    }
    // Real transcripts sometimes have two turns of one speaker in a row; they are kept as they are.
    console.info(`[hh-rlhf] prompts with two consecutive turns of one role: ${nonAlternating}`);
  });

  it("tokenises every row with SmolLM2 + ChatML keeping the token-space prefix property", () => {
    const t0 = performance.now();
    // onPrefixMismatch defaults to "error": any row whose prompt ids are not a prefix of prompt+completion throws.
    // TRL's default maxLength (1024) applies, but the prefix check runs on every row before truncation.
    const out = tokenizePreferenceDataset(examples, tok, { warn: () => {} });
    const ms = performance.now() - t0;
    console.info(`[hh-rlhf] ${formatDataReport(out.report)}; 2307 rows x 3 encodes in ${(ms / 1000).toFixed(1)} s`);
    expect(out.report.rowsIn).toBe(2307);
    expect(out.report.dropped).toEqual({});
    expect(out.report.rowsOut).toBe(2307);
    const genHeader = tok.encode("<|im_start|>assistant\n", { addSpecialTokens: false });
    const turnEnd = tok.encode("<|im_end|>\n", { addSpecialTokens: false });
    expect(genHeader[0]).toBe(1);
    expect(turnEnd[0]).toBe(2);
    let untruncated = 0;
    let atCap = 0;
    for (const row of out.examples) {
      // The rendered prompt ends with the assistant generation header (the prompt ended on a user turn).
      expect(row.promptIds.slice(-genHeader.length)).toEqual(genHeader);
      expect(row.promptIds.length + Math.max(row.chosenIds.length, row.rejectedIds.length)).toBeLessThanOrEqual(1024);
      if (row.promptIds.length + Math.max(row.chosenIds.length, row.rejectedIds.length) < 1024) {
        // Each completion is one assistant turn closed by <|im_end|>\n, with no stray turn header.
        expect(row.chosenIds.slice(-turnEnd.length)).toEqual(turnEnd);
        expect(row.rejectedIds.slice(-turnEnd.length)).toEqual(turnEnd);
        expect(row.chosenIds.indexOf(1)).toBe(-1);
        untruncated++;
      } else atCap++;
    }
    // Truncated rows end exactly at the cap.
    expect(atCap).toBeGreaterThanOrEqual(out.report.truncated);
    expect(untruncated + atCap).toBe(2307);
    // Independent re-check on a spread of rows: prompt ++ chosen equals the whole rendered conversation's ids.
    for (let i = 0; i < examples.length; i += 97) {
      const ex = examples[i]!;
      const row = out.examples[i]!;
      const full = tok.encode(tok.applyChatTemplate([...ex.prompt, ...ex.chosen]), { addSpecialTokens: false });
      expect([...row.promptIds, ...row.chosenIds]).toEqual(full.slice(0, row.promptIds.length + row.chosenIds.length));
    }

    const batch = collateDpo(out.examples.slice(0, 4), { padTokenId: tok.padTokenId! });
    expect(batch.inputIds).toHaveLength(8);
    expect(batch.attentionMask.map((r) => r.reduce((s, x) => s + x, 0))).toEqual(
      batch.promptLengths.map((p, i) => p + batch.completionLengths[i]!),
    );
  });
});

describe.skipIf(!dpoPath || !tokPath)("Human-Like-DPO 1k (explicit prompts, standard style)", () => {
  it("loads 972 rows and tokenises them with eos-terminated completions", async () => {
    const loaded = await loadDataset(dpoPath!);
    expect(loaded.format).toBe("json");
    const prepared = preparePreferenceDataset(loaded);
    expect(prepared.format).toEqual({ kind: "preference", style: "standard" });
    expect(prepared.report).toMatchObject({ rowsIn: 972, rowsOut: 972 });
    const out = tokenizePreferenceDataset(prepared.examples, tok, { maxLength: 256, warn: () => {} });
    console.info(`[human-like-dpo] maxLength 256: ${formatDataReport(out.report)}`);
    expect(out.report.rowsIn).toBe(972);
    expect(out.report.rowsOut + out.report.droppedRows.length).toBe(972);
    let untruncated = 0;
    let atCap = 0;
    for (const row of out.examples) {
      expect(row.promptIds.length).toBeGreaterThan(0);
      const len = row.promptIds.length + Math.max(row.chosenIds.length, row.rejectedIds.length);
      expect(len).toBeLessThanOrEqual(256);
      if (len < 256) {
        expect(row.chosenIds.at(-1)).toBe(2);
        expect(row.rejectedIds.at(-1)).toBe(2);
        untruncated++;
      } else atCap++;
    }
    expect(atCap).toBeGreaterThanOrEqual(out.report.truncated);
    expect(untruncated + atCap).toBe(out.report.rowsOut);
    const first = prepared.examples[0]!;
    expect(out.examples[0]!.promptIds).toEqual(tok.encode(first.prompt as string));
  });
});
