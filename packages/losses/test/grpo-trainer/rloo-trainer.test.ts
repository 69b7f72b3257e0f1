/**
 * RLOOTrainer's numbers by hand: the first update's shaped rewards (β · Σ_t k1 KL), leave-one-out advantages,
 * the `kl` metric, the loss with ratio 1, normalizeAdvantages and rewardClipRange; the clip ratios are shares
 * of sequences.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tf } from "@prefkit/core";
import { rlooAdvantages } from "@prefkit/losses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BASE, makeTrainer, updateLogs } from "./setup.js";

let dir: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  dir = await mkdtemp(join(tmpdir(), "prefkit-rloo-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

async function firstUpdate(args: Record<string, unknown>) {
  const t = makeTrainer("rloo", dir, {}, { maxSteps: 1, ...args });
  await t.train();
  const out = { log: updateLogs(t.state.logHistory)[0]!, rollout: t.lastRollout! };
  t.dispose();
  return out;
}

describe("RLOOTrainer, first update by hand", () => {
  it.each([
    { beta: 0.05, normalizeAdvantages: false, rewardClipRange: null },
    { beta: 0.5, normalizeAdvantages: true, rewardClipRange: [0, 1] as [number, number] },
    { beta: 0, normalizeAdvantages: false, rewardClipRange: [0, 2] as [number, number] },
  ])("β $beta, normalizeAdvantages $normalizeAdvantages, rewardClipRange $rewardClipRange", async (cfg) => {
    const { log, rollout } = await firstUpdate(cfg);
    const mask = rollout.mask;
    // Σ_t (log π_old − log π_ref) over each completion's loss tokens, and its token mean (the `kl` metric).
    const ref = rollout.refLogprobs ?? rollout.logprobs; // β = 0: no reference, no KL
    const seqKl = rollout.logprobs.map((row, i) => sum(row.map((x, t) => (mask[i]![t] ? x - ref[i]![t]! : 0))));
    const range = cfg.rewardClipRange;
    const shaped = rollout.rewards.map(
      (r, i) => (range ? Math.min(Math.max(r[0]!, range[0]), range[1]) : r[0]!) - cfg.beta * seqKl[i]!,
    );
    const expected = rlooAdvantages(shaped, BASE.numGenerations, { normalize: cfg.normalizeAdvantages });
    rollout.advantages.forEach((a, i) => void expect(a).toBeCloseTo(expected.advantages[i]!, 5));
    if (cfg.beta === 0) expect("kl" in log).toBe(false);
    else {
      expect(log["kl"]).toBeCloseTo(sum(seqKl) / sum(mask.map(sum)), 6);
      // The policy is the reference when sampling: only the cached-vs-full forward difference remains.
      expect(Math.abs(log["kl"]!)).toBeLessThan(1e-4);
    }
    // Ratio 1: the loss is −mean(A) over each micro-batch, whose mean over the update is −mean(A).
    expect(log["loss"]).toBeCloseTo(-sum(rollout.advantages) / rollout.advantages.length, 5);
    expect(log["clip_ratio/region_mean"]).toBe(0);
    expect(log["frac_reward_zero_std"]).toBeCloseTo(expected.fracRewardZeroStd, 12);
  });

  it("reusing the rollout (numIterations 2) clips sequence ratios: the shares are multiples of 1/rows", async () => {
    const t = makeTrainer(
      "rloo",
      dir,
      {},
      { maxSteps: 3, numIterations: 2, learningRate: 3e-2, perDeviceTrainBatchSize: 8, gradientAccumulationSteps: 1 },
    );
    const shares: number[] = [];
    await t.train();
    for (const l of updateLogs(t.state.logHistory)) shares.push(l["clip_ratio/region_mean"]!);
    // Two optimizer steps per update, averaged: the first has ratio 1 (no clipping), so the mean is k/16.
    for (const s of shares) expect(Number.isInteger(Math.round(s * 16 * 1e6) / 1e6)).toBe(true);
    expect(shares.some((s) => s > 0)).toBe(true);
    t.dispose();
  });
});
