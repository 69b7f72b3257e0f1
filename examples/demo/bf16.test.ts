/**
 * The demo's bf16 phase on the fast path: the trained model saved as bf16 and loaded twice, a few LoRA DPO
 * steps in float32 and in bf16 AMP, the per-step losses and their difference printed, the temporary
 * checkpoint removed and every tensor freed.
 */
import { existsSync } from "node:fs";
import { initEngine, nativeBlasPlugin, shutdownEngine, tf } from "@prefkit/core";
import { AutoModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skipWithoutNativeDecoder } from "../../packages/models/test/modeling/native-helpers.js";
// @ts-expect-error plain-JS example modules, no type declarations
import { runBf16Phase } from "./lib/bf16.mjs";
// @ts-expect-error plain-JS example modules, no type declarations
import { preferencePairs, promptSplit, WORDS } from "./lib/corpus.mjs";
// @ts-expect-error plain-JS example modules, no type declarations
import { tinyLlamaConfig } from "./lib/tiny.mjs";
// @ts-expect-error plain-JS example modules, no type declarations
import { WordTokenizer } from "./lib/word-tokenizer.mjs";

const SKIP = skipWithoutNativeDecoder("the demo's bf16 phase");

describe.skipIf(SKIP)("demo bf16 phase (fast path)", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 1, plugins: [nativeBlasPlugin()] });
  });
  afterAll(() => {
    shutdownEngine();
  });

  it("prints float32 and bf16 AMP losses per step and their difference; ln 2 at the first step in both", async () => {
    const tok = new WordTokenizer(WORDS);
    const model = AutoModelForCausalLM.fromConfig(tinyLlamaConfig(tok.vocabSize), { seed: 3 });
    const pairs = preferencePairs(promptSplit(3).train, 24, 4);
    const baseline = tf.memory().numTensors;
    const lines: string[] = [];
    const r = await runBf16Phase({ model, tok, pairs, steps: 3, batch: 8, seed: 3, log: (l: string) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(baseline);
    expect(r.checkpointDir).toMatch(/prefkit-demo-bf16-/);
    expect(existsSync(r.checkpointDir)).toBe(false); // the temporary bf16 checkpoint is gone
    model.dispose();
    expect(r.skipped).toBeUndefined();
    expect(r.lossesFp32).toHaveLength(3);
    expect(r.lossesBf16).toHaveLength(3);
    // Step 1: policy = reference (lora_B = 0), the same roundings on both sides: exactly ln 2 in both.
    expect(r.lossesFp32[0]).toBeCloseTo(Math.LN2, 6);
    expect(r.lossesBf16[0]).toBeCloseTo(Math.LN2, 6);
    // Later steps differ (the products ran in bf16), by far less than the derived 5-step bound's scale
    // (1e-2 on the test model of losses/test/trainers/dpo-bf16-amp.test.ts).
    expect(r.maxDiff).toBeGreaterThan(0);
    expect(r.maxDiff).toBeLessThan(1e-2);
    const text = lines.join("\n");
    for (let i = 0; i < 3; i++) {
      const line = new RegExp(
        `\\[bf16\\] step +${i + 1}/3 +loss fp32 ${r.lossesFp32[i].toFixed(6)} +bf16 AMP ${r.lossesBf16[i].toFixed(6)} +\\|Δ\\| [\\d.e+-]+`,
      );
      expect(text).toMatch(line);
    }
    expect(text).toMatch(
      /bf16 AMP vs float32: max \|Δ loss\| [\d.e+-]+ over 3 steps .*time fp32 [\d.]+ s, bf16 AMP [\d.]+ s/,
    );
  });
});
