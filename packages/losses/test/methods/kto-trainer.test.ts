import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng, type TokenizedUnpaired, tf } from "@prefkit/core";
import { KTOTrainer } from "@prefkit/losses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handLogp, tinyModel, trainLogs } from "../trainers/helpers.js";

let root = "";
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-kto-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Unpaired rows: desirable completions use even ids, undesirable ones odd ids (learnable). */
function unpaired(n: number, seed = 11): TokenizedUnpaired[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const label = i % 2 === 0;
    const len = 1 + r.int(3);
    return {
      promptIds: [1, 2 + r.int(14)],
      completionIds: Array.from({ length: len }, () => 2 + 2 * r.int(7) + (label ? 0 : 1)),
      label,
    };
  });
}

const base = { saveStrategy: "no" as const, loggingSteps: 1, perDeviceTrainBatchSize: 4 };

describe("KTOTrainer", () => {
  it("step 0: loss 1 − σ(0) = 0.5, zero rewards and KL; KL pairs rotate completions within each batch (TRL)", async () => {
    const model = tinyModel(4);
    const rows = unpaired(8);
    const t = new KTOTrainer({
      model,
      args: { ...base, outputDir: join(root, "s0"), maxSteps: 1, learningRate: 0 },
      trainDataset: rows,
    });
    await t.train();
    const log = trainLogs(t.state.logHistory)[0]!;
    expect(log["loss"]).toBeCloseTo(0.5, 6);
    for (const k of ["rewards/chosen", "rewards/rejected", "rewards/margins", "kl"]) expect(log[k]).toBeCloseTo(0, 6);
    // sequential sampling (TRL's default): the first batch is rows 0..3; logps/chosen = mean over rows 0 and 2
    const expected =
      (handLogp(model, rows[0]!.promptIds, rows[0]!.completionIds) +
        handLogp(model, rows[2]!.promptIds, rows[2]!.completionIds)) /
      2;
    expect(log["logps/chosen"]).toBeCloseTo(expected, 4);
    expect(t.trainRows.map((r) => r.klCompletionIds)).toEqual([
      rows[3]!.completionIds,
      rows[0]!.completionIds,
      rows[1]!.completionIds,
      rows[2]!.completionIds,
      rows[7]!.completionIds,
      rows[4]!.completionIds,
      rows[5]!.completionIds,
      rows[6]!.completionIds,
    ]);
    t.dispose();
    model.dispose();
  });

  it("learns the desirable/undesirable split: the reward gap opens and the loss falls", async () => {
    const model = tinyModel(5);
    const t = new KTOTrainer({
      model,
      args: { ...base, outputDir: join(root, "learn"), maxSteps: 24, learningRate: 2e-2, beta: 0.5 },
      trainDataset: unpaired(16),
    });
    await t.train();
    const logs = trainLogs(t.state.logHistory);
    expect(logs).toHaveLength(24);
    expect(logs.at(-1)!["rewards/margins"]).toBeGreaterThan(0.2);
    expect(logs.at(-1)!["loss"]).toBeLessThan(logs[0]!["loss"]! - 0.05);
    expect(logs.at(-1)!["kl"]).toBeGreaterThanOrEqual(0);
    t.dispose();
    model.dispose();
  });

  it('apo_zero_unpaired runs no KL pass and logs kl 0; random sampling is refused for "kto"', async () => {
    const model = tinyModel(6);
    const t = new KTOTrainer({
      model,
      args: {
        ...base,
        outputDir: join(root, "apo"),
        maxSteps: 2,
        lossType: "apo_zero_unpaired",
        learningRate: 1e-2,
        trainSamplingStrategy: "random",
      },
      trainDataset: unpaired(8),
    });
    await t.train();
    const logs = trainLogs(t.state.logHistory);
    // step 1: desirable 1 − σ(0) = 0.5, undesirable σ(0) = 0.5
    expect(logs[0]!["loss"]).toBeCloseTo(0.5, 6);
    expect(logs.map((l) => l["kl"])).toEqual([0, 0]);
    t.dispose();
    expect(
      () => new KTOTrainer({ model, args: { trainSamplingStrategy: "random" }, trainDataset: unpaired(8) }),
    ).toThrow(/sequential/);
    model.dispose();
  });
});
