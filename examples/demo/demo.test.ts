import { initEngine, tokenizePreferenceDataset, tf } from "@prefkit/core";
import { beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../test/helpers/shared.js";
// @ts-expect-error plain-JS example modules, no type declarations
import { parseCli } from "./demo.mjs";
// @ts-expect-error plain-JS example modules, no type declarations
import * as corpus from "./lib/corpus.mjs";
// @ts-expect-error plain-JS example modules, no type declarations
import { runModelDemo, saysHappy, storyPrompts } from "./lib/real-model.mjs";
// @ts-expect-error plain-JS example modules, no type declarations
import { runTinyDemo } from "./lib/tiny.mjs";
// @ts-expect-error plain-JS example modules, no type declarations
import { WordTokenizer } from "./lib/word-tokenizer.mjs";

const { COLOURS, followsRule, makePrompt, preferencePairs, promptSplit, sftCorpus, WORDS } = corpus;
type Pair = { name: string; colour: string };
type Row = { prompt: string; completion: string };
type PrefRow = { prompt: string; chosen: string; rejected: string };

beforeAll(async () => {
  await initEngine({ backend: "wasm" });
});

describe("demo corpus and rule", () => {
  it("states the rule as a checkable function of prompt and completion", () => {
    expect(followsRule("tom loves red . story :", " tom finds a red kite .")).toBe(true);
    expect(followsRule("tom loves red . story :", " tom finds a blue kite .")).toBe(false);
    // A word that merely contains the colour does not count.
    expect(followsRule("tom loves red . story :", " tom finds a reddish kite .")).toBe(false);
  });

  it("holds out (name, colour) prompts that never appear in SFT or DPO data", () => {
    const { train, heldOut } = promptSplit(42) as { train: Pair[]; heldOut: Pair[] };
    expect(train.length + heldOut.length).toBe(48);
    expect(heldOut.length).toBe(12);
    const held = new Set(heldOut.map((p) => makePrompt(p.name, p.colour)));
    const sft = sftCorpus(train, 2000, 1) as Row[];
    const pairs = preferencePairs(train, 500, 2) as PrefRow[];
    expect(sft.some((r) => held.has(r.prompt))).toBe(false);
    expect(pairs.some((r) => held.has(r.prompt))).toBe(false);
  });

  it("SFT stories follow the rule about 1 time in 3 and are mostly yellow", () => {
    const { train } = promptSplit(42) as { train: Pair[] };
    const rows = sftCorpus(train, 4000, 1) as Row[];
    const rate = rows.filter((r) => followsRule(r.prompt, r.completion)).length / rows.length;
    // 0.3 direct + 0.2 · 1/6 random, plus yellow prompts' yellow stories.
    expect(rate).toBeGreaterThan(0.3);
    expect(rate).toBeLessThan(0.45);
    const yellow = rows.filter((r) => r.completion.includes(" yellow ")).length / rows.length;
    expect(yellow).toBeGreaterThan(0.5);
  });

  it("preference pairs differ only in the colour; chosen follows the rule, rejected does not", () => {
    const { train } = promptSplit(42) as { train: Pair[] };
    for (const r of preferencePairs(train, 300, 3) as PrefRow[]) {
      expect(followsRule(r.prompt, r.chosen)).toBe(true);
      expect(followsRule(r.prompt, r.rejected)).toBe(false);
      const a = r.chosen.split(" ");
      const b = r.rejected.split(" ");
      expect(a.length).toBe(b.length);
      const diff = a.flatMap((w, i) => (w === b[i] ? [] : [[w, b[i]]]));
      expect(diff.length).toBe(1);
      expect(COLOURS).toContain(diff[0]![1]);
    }
  });

  it("the word tokenizer round-trips and keeps the token-space prefix property in the data pipeline", () => {
    const tok = new WordTokenizer(WORDS);
    expect(tok.encode("tom loves red . story :")).toEqual([
      1,
      ...tok.encode("tom loves red . story :", { addSpecialTokens: false }),
    ]);
    expect(tok.decode(tok.encode("tom finds a red kite ."), { skipSpecialTokens: true })).toBe(
      "tom finds a red kite .",
    );
    expect(tok.encode("tom zzz", { addSpecialTokens: false })).toEqual([tok.ids.get("tom"), tok.unkTokenId]);
    const { train } = promptSplit(42) as { train: Pair[] };
    const rows = preferencePairs(train, 20, 4) as PrefRow[];
    const { examples, report } = tokenizePreferenceDataset(rows, tok, { maxLength: 32 });
    expect(examples.length).toBe(20);
    expect(report).toBeDefined();
    for (const [i, e] of examples.entries()) {
      expect(e.promptIds).toEqual(tok.encode(rows[i]!.prompt));
      expect(e.chosenIds.at(-1)).toBe(tok.eosTokenId);
      expect(tok.decode(e.chosenIds, { skipSpecialTokens: true })).toBe(rows[i]!.chosen.trim());
    }
  });
});

describe("demo CLI", () => {
  it("parses the flags", () => {
    expect(parseCli([])).toMatchObject({ quick: false, seed: 42, model: undefined, json: false });
    expect(parseCli(["--quick", "--seed", "7", "--model", "/m", "--threads", "1"])).toMatchObject({
      quick: true,
      seed: 7,
      model: "/m",
      threads: 1,
    });
    expect(() => parseCli(["--seed", "x"])).toThrow(/--seed/);
    expect(() => parseCli(["--nope"])).toThrow();
  });
});

describe("demo run (--quick)", () => {
  it("SFTs a tiny Llama, DPOs it, prints TRL metrics and rule rates, and frees every tensor", async () => {
    const lines: string[] = [];
    const baseline = tf.memory().numTensors;
    const r = await runTinyDemo({ quick: true, seed: 42, log: (l: string) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(baseline);

    const text = lines.join("\n");
    const sftLosses = [...text.matchAll(/\[sft\] step +\d+\/\d+ +loss ([\d.]+)/g)].map((m) => Number(m[1]));
    expect(sftLosses.length).toBeGreaterThanOrEqual(3);
    expect(sftLosses.at(-1)!).toBeLessThan(sftLosses[0]! * 0.6);
    for (const name of ["loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "logps/rejected"]) {
      expect(text).toMatch(new RegExp(`\\[dpo\\] step .*${name} -?[\\d.]+`));
    }
    expect(text).toMatch(/rule rate, sampled T=1 : \d+% → \d+%/);
    expect(text).toMatch(/rule rate, greedy {6}: \d+% → \d+%/);

    // Rates are fractions of the printed samples, measured with the stated rule.
    for (const s of [...r.samplesBefore, ...r.samplesAfter]) expect(s.ok).toBe(followsRule(s.prompt, s.completion));
    expect(r.ruleRateBefore).toBeGreaterThanOrEqual(0);
    expect(r.ruleRateAfter).toBeLessThanOrEqual(1);
    expect(r.greedyRateAfter).toBeGreaterThanOrEqual(r.greedyRateBefore);
    // Even the short run learns the preference on pairs it never saw.
    expect(r.train["rewards/accuracies"]).toBeGreaterThan(0.5);
    expect(r.train["rewards/margins"]).toBeGreaterThan(0);
    expect(r.heldOut["rewards/accuracies"]).toBeGreaterThan(0.6);
    expect(r.heldOut["rewards/margins"]).toBeGreaterThan(0);
    expect(r.heldOut.loss).toBeLessThan(Math.LN2);
    // The bf16 phase needs the fast path; on wasm it says why it is skipped (bf16.test.ts runs it).
    expect(r.bf16.skipped).toMatch(/bf16 compute needs cpu \+ the native addons|fused decoder is not available/);
    expect(text).toContain(`5. bf16: skipped: ${r.bf16.skipped}.`);
  });

  const stories = sharedPath("assets/stories260K");
  it.skipIf(!stories)("--model runs DPO on stories260K with pairs from its own samples", async () => {
    expect(saysHappy("", "They were happy.")).toBe(true);
    expect(saysHappy("", "They were unhappy.")).toBe(false);
    const { train, heldOut } = storyPrompts() as { train: string[]; heldOut: string[] };
    expect(train.some((p) => heldOut.includes(p))).toBe(false);
    const lines: string[] = [];
    const baseline = tf.memory().numTensors;
    const r = await runModelDemo({ dir: stories, quick: true, seed: 42, log: (l: string) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(baseline);
    expect(r.pairs).toBeGreaterThan(0);
    expect(r.samples).toBe(heldOut.length * 4);
    expect(lines.join("\n")).toMatch(/\[dpo\] step .*rewards\/accuracies [\d.]+ +rewards\/margins -?[\d.]+/);
    // After training, the policy prefers its chosen samples over its rejected ones (vs the reference).
    expect(r.pairsAfter["rewards/accuracies"]).toBeGreaterThan(0.5);
    expect(r.pairsAfter["rewards/margins"]).toBeGreaterThan(0);
  });
});
