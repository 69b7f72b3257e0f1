import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tf } from "@prefkit/core";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs example without type declarations
import { main } from "./train.mjs";

describe("examples/custom-dpo-loss", () => {
  it("trains a tiny model with the user's registered loss and prints its metrics", async () => {
    await tf.setBackend("cpu");
    const dir = await mkdtemp(join(tmpdir(), "prefkit-custom-loss-"));
    const lines: string[] = [];
    try {
      const history: Array<Record<string, number>> = await main({
        steps: 20,
        outputDir: dir,
        log: (l: string) => lines.push(l),
      });
      const train = history.filter((e) => "loss" in e);
      expect(train).toHaveLength(4);
      // at step 0 Δ = 0, so the loss is softplus(γ); the first log averages steps 1–5 and is no higher
      expect(train[0]!["loss"]).toBeLessThan(Math.log1p(Math.exp(0.5)) + 1e-6);
      expect(train[3]!["loss"]).toBeLessThan(train[0]!["loss"]! - 0.1);
      expect(train[3]!["margin_dpo/satisfied"]).toBeGreaterThan(train[0]!["margin_dpo/satisfied"]!);
      const evalLog = history.find((e) => "eval_loss" in e)!;
      expect(evalLog["eval_rewards/accuracies"]).toBeGreaterThan(0.5);
      expect(lines[0]).toMatch(/^step 5: loss=\d/);
      expect(lines.join("\n")).toMatch(/rewards\/margins=/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
