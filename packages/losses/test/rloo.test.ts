import { ConfigError, tf } from "@prefkit/core";
import { rlooAdvantages, rlooLoss, rlooShapeRewards } from "@prefkit/losses";
import { describe, expect, it } from "vitest";
import { cpuAgainstTorch, expectClose, methodsReference } from "./helpers.js";

interface ClipRatioValues {
  lowMean: number;
  highMean: number;
  regionMean: number;
}

const ref = methodsReference.rloo as {
  inputs: {
    rewards: number[];
    oldLogps: number[][];
    refLogps: number[][];
    mask: number[][];
    logps: number[][];
    oldSequenceLogps: number[];
  };
  shaping: {
    beta: number;
    rewardClipRange: [number, number] | null;
    rewards: number[];
    sequenceKl: number[];
    kl: number;
  }[];
  advantages: {
    rewards: number[];
    numGenerations: number;
    normalize: boolean;
    advantages: number[];
    baselines: number[];
    fracRewardZeroStd: number;
  }[];
  losses: {
    epsilon: number;
    epsilonHigh: number;
    oldIsNone: boolean;
    advantages: number[];
    loss: number;
    perSequenceLoss: number[];
    clipRatio: ClipRatioValues;
    grad: number[][];
  }[];
};
const x = ref.inputs;

cpuAgainstTorch("rloo");

describe("RLOO vs TRL RLOOTrainer (torch float64)", () => {
  it("reward shaping: clamp, then − β·Σ(old − ref) over valid tokens; kl = token mean of k1", () => {
    for (const s of ref.shaping) {
      const at = `β=${s.beta} clip=${JSON.stringify(s.rewardClipRange)}`;
      const out = rlooShapeRewards(x.rewards, x.oldLogps, x.refLogps, x.mask, {
        beta: s.beta,
        rewardClipRange: s.rewardClipRange,
      });
      expectClose(out.rewards, s.rewards, `${at} rewards`);
      expectClose(out.sequenceKl, s.sequenceKl, `${at} sequenceKl`);
      expectClose(out.kl, s.kl, `${at} kl`);
    }
  });

  it("leave-one-out advantages with and without normalisation, zero-variance groups and k = 1", () => {
    expect(ref.advantages.some((a) => a.normalize)).toBe(true);
    expect(ref.advantages.some((a) => a.fracRewardZeroStd > 0 && a.fracRewardZeroStd < 1)).toBe(true);
    for (const a of ref.advantages) {
      const at = `k=${a.numGenerations} normalize=${a.normalize}`;
      const out = rlooAdvantages(a.rewards, a.numGenerations, { normalize: a.normalize });
      expectClose(out.advantages, a.advantages, `${at} advantages`);
      if (a.numGenerations > 1) expectClose(out.baselines, a.baselines, `${at} baselines`);
      expect(out.fracRewardZeroStd).toBeCloseTo(a.fracRewardZeroStd, 12);
    }
    expect(() => rlooAdvantages([1, 2, 3], 2)).toThrow(ConfigError);
  });

  it("sequence-level clipped loss, its clip ratios and its gradient", () => {
    for (const l of ref.losses) {
      const at = `ε=${l.epsilon}/${l.epsilonHigh}${l.oldIsNone ? " old=detached" : ""}`;
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const out = rlooLoss(x.logps, l.oldIsNone ? null : x.oldSequenceLogps, l.advantages, x.mask, {
          epsilon: l.epsilon,
          epsilonHigh: l.epsilonHigh,
        });
        expectClose(out.loss, l.loss, `${at} loss`);
        expectClose(out.perSequenceLoss, l.perSequenceLoss, `${at} perSequenceLoss`);
        expectClose(out.clipRatio.lowMean, l.clipRatio.lowMean, `${at} clip_ratio/low_mean`);
        expectClose(out.clipRatio.highMean, l.clipRatio.highMean, `${at} clip_ratio/high_mean`);
        expectClose(out.clipRatio.regionMean, l.clipRatio.regionMean, `${at} clip_ratio/region_mean`);
      });
      expect(tf.memory().numTensors).toBe(before);
      const logps = tf.variable(tf.tensor2d(x.logps));
      const { value, grads } = tf.variableGrads(
        () =>
          rlooLoss(logps, l.oldIsNone ? null : x.oldSequenceLogps, l.advantages, x.mask, {
            epsilon: l.epsilon,
            epsilonHigh: l.epsilonHigh,
          }).loss,
        [logps],
      );
      expectClose(grads[logps.name]!, l.grad, `${at} d/dlogps`);
      tf.dispose([logps, value, ...Object.values(grads)]);
    }
  });
});
