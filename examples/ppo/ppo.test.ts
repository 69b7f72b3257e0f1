import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine } from "@prefkit/core";
import { describe, expect, it } from "vitest";
import { sharedPath } from "../../test/helpers/shared.js";
// @ts-expect-error: a plain .mjs example without type declarations
import { happyScore, main } from "./train.mjs";

const model = sharedPath("assets/stories260K");

describe("examples/ppo", () => {
  it("scores the rule transparently", () => {
    expect(happyScore("Lily was happy. She smiled and had fun with her friends!")).toBe(4);
    expect(happyScore("Unhappy cats")).toBe(0);
  });

  it.skipIf(!model)("a short PPO run raises the held-out happy score with bounded KL", async () => {
    await initEngine({ backend: "wasm", threads: 1 }); // cpu is much slower on these shapes
    const dir = await mkdtemp(join(tmpdir(), "prefkit-ppo-example-"));
    const lines: string[] = [];
    try {
      const out = await main({
        updates: 6,
        responseLength: 16,
        learningRate: 3e-4,
        evalSamples: 1,
        outputDir: dir,
        log: (l: string) => lines.push(l),
      });
      expect(out.after).toBeGreaterThan(out.before + 0.3);
      expect(out.lastRlhfReward).toBeGreaterThan(out.firstRlhfReward);
      expect(out.maxKl).toBeLessThan(20);
      expect(out.firstEpochRatio.min).toBeGreaterThan(0.9);
      expect(out.firstEpochRatio.max).toBeLessThan(1.1);
      expect(lines.join("\n")).toMatch(/update 6: objective\/scores=.* objective\/rlhf_reward=.* objective\/kl=/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
