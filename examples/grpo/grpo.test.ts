import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine } from "@prefkit/core";
import { describe, expect, it } from "vitest";
import { sharedPath } from "../../test/helpers/shared.js";
// @ts-expect-error: a plain .mjs example without type declarations
import { main, short_sentence, uses_happy } from "./train.mjs";

const model = sharedPath("assets/stories260K");

describe("examples/grpo", () => {
  it("scores the two rules transparently", () => {
    expect(uses_happy(["Lily was happy.", "Unhappy cats", "HAPPY!"])).toEqual([1, 0, 1]);
    expect(short_sentence(["She was happy.", "She was happy", "one two three four five six seven."])).toEqual([
      1, 0, 0,
    ]);
  });

  it.skipIf(!model)(
    "20 updates raise the held-out rewards with a bounded KL, and write the report's charts",
    async () => {
      await initEngine({ backend: "wasm", threads: 1 }); // cpu is much slower on these shapes
      const dir = await mkdtemp(join(tmpdir(), "prefkit-grpo-example-"));
      const lines: string[] = [];
      try {
        const out = await main({ updates: 20, outputDir: dir, log: (l: string) => lines.push(l) });
        // Measured here: held-out reward 0.083 → 0.906 (uses_happy 0.016 → 0.797), training reward 0.34 → 0.91.
        expect(out.after.eval_reward).toBeGreaterThan(out.before.eval_reward + 0.4);
        expect(out.after["eval_rewards/uses_happy/mean"]).toBeGreaterThan(
          out.before["eval_rewards/uses_happy/mean"] + 0.3,
        );
        expect(out.lastRewards).toBeGreaterThan(out.firstRewards + 0.3);
        expect(out.history[0].kl).toBe(0); // the policy is the reference at the first update
        expect(out.maxKl).toBeLessThan(5);
        expect(out.charts.map((p: string) => p.split("/").pop())).toEqual([
          "rewards.png",
          "kl.png",
          "lengths.png",
          "entropy.png",
        ]);
        for (const png of out.charts) expect(existsSync(png)).toBe(true);
        expect(lines.join("\n")).toMatch(/update 20: reward=.* uses_happy=.* short_sentence=.* kl=/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
