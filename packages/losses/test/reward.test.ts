import { ConfigError, tf } from "@prefkit/core";
import { createRewardLoss, defaultRewardConfig, rewardLoss, validateRewardConfig } from "@prefkit/losses";
import { describe, expect, it } from "vitest";
import { cpuAgainstTorch, expectClose, reference } from "./helpers.js";

interface RewardCase {
  margin: number[] | null;
  centerRewardsCoefficient: number | null;
  loss: number;
  metrics: Record<string, number>;
}

cpuAgainstTorch("reward");

describe("rewardLoss vs TRL (torch float64)", () => {
  const { chosenRewards, rejectedRewards } = reference.reward;

  it("matches loss and metrics with/without margin and centring", () => {
    for (const c of reference.reward.cases as RewardCase[]) {
      const where = `reward margin=${c.margin !== null} coef=${c.centerRewardsCoefficient}`;
      tf.tidy(() => {
        const out = rewardLoss(chosenRewards, rejectedRewards, {
          margin: c.margin,
          centerRewardsCoefficient: c.centerRewardsCoefficient,
        });
        expectClose(out.loss, c.loss, `${where} loss`);
        for (const [name, value] of Object.entries(c.metrics)) {
          expectClose(out.metrics[name as keyof typeof out.metrics], value, `${where} ${name}`);
        }
      });
    }
  });

  it("is differentiable inside tf.variableGrads (finite differences)", () => {
    const c = tf.variable(tf.tensor1d(chosenRewards));
    const r = tf.tensor1d(rejectedRewards);
    const f = (x: tf.Tensor) => rewardLoss(x, r, { margin: 0.25, centerRewardsCoefficient: 0.01 }).loss;
    const { grads, value } = tf.variableGrads(() => f(c));
    const g = grads[c.name]!.dataSync();
    const h = 1e-2;
    chosenRewards.forEach((x: number, i: number) => {
      const plus = [...chosenRewards];
      const minus = [...chosenRewards];
      plus[i] = x + h;
      minus[i] = x - h;
      const fd = tf.tidy(() => (f(tf.tensor1d(plus)).dataSync()[0]! - f(tf.tensor1d(minus)).dataSync()[0]!) / (2 * h));
      expect(Math.abs(g[i]! - fd)).toBeLessThan(1e-4);
    });
    tf.dispose([c, r, value, ...Object.values(grads)]);
  });

  it("the reward Loss object forwards the config's centring coefficient", () => {
    tf.tidy(() => {
      const loss = createRewardLoss({ centerRewardsCoefficient: 0.01 });
      const ref = (reference.reward.cases as RewardCase[]).find((c) => c.margin && c.centerRewardsCoefficient)!;
      expect(loss.name).toBe("reward");
      expect(loss.batchKind).toBe("pair-scores");
      const out = loss.compute({
        chosenScores: tf.tensor1d(chosenRewards),
        rejectedScores: tf.tensor1d(rejectedRewards),
        margins: tf.tensor1d(ref.margin!),
      });
      expectClose(out.loss, ref.loss, "reward Loss");
    });
  });
});

describe("RewardConfig", () => {
  it("has TRL's defaults", () => {
    const c = defaultRewardConfig();
    expect(c).toMatchObject({
      learningRate: 1e-4,
      maxLength: 1024,
      centerRewardsCoefficient: null,
      disableDropout: true,
    });
    expect(() => validateRewardConfig(c)).not.toThrow();
  });

  it("rejects bad fields with ConfigError", () => {
    expect(() => validateRewardConfig({ ...defaultRewardConfig(), centerRewardsCoefficient: -1 })).toThrow(ConfigError);
    expect(() => validateRewardConfig({ ...defaultRewardConfig(), maxLength: 1.5 })).toThrow(/maxLength/);
  });
});
