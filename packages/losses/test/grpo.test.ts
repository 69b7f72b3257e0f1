import { ConfigError, tf } from "@prefkit/core";
import {
  GRPO_LOSS_TYPES,
  type GRPOLossOptions,
  type GRPOLossType,
  groupAdvantages,
  grpoLoss,
  type MultiObjectiveAggregation,
  rewardMetrics,
  type ScaleRewards,
  weightedRewardSum,
} from "@prefkit/losses";
import { describe, expect, it } from "vitest";
import { configErrorField, cpuAgainstTorch, expectClose, methodsReference } from "./helpers.js";

interface AdvantageCase {
  scaleRewards: ScaleRewards;
  multiObjectiveAggregation?: MultiObjectiveAggregation;
  numGenerations: number;
  advantages: number[];
  rewards: number[];
  std: number[];
  fracRewardZeroStd: number;
}

interface ClipRatioValues {
  lowMean: number;
  highMean: number;
  regionMean: number;
}

interface LossCase {
  lossType: GRPOLossType;
  beta: number;
  epsilon: number;
  epsilonHigh: number;
  oldIsNone?: boolean;
  refIsNone?: boolean;
  numItemsInBatch?: number;
  gradientAccumulationSteps?: number;
  delta?: number;
  loss: number;
  perTokenLoss: number[][];
  kl: number | null;
  clipRatio: ClipRatioValues;
  grad: number[][];
}

const adv = methodsReference.grpoAdvantages as {
  rewards: (number | null)[][];
  rewardWeights: number[];
  cases: AdvantageCase[];
  weightedSum: number[];
  metrics: Record<string, number>;
  single: { rewards: number[]; cases: AdvantageCase[] };
};
const lossRef = methodsReference.grpoLoss as {
  inputs: {
    logps: number[][];
    oldLogps: number[][];
    refLogps: number[][];
    mask: number[][];
    advantages: number[];
    maxCompletionLength: number;
  };
  cases: LossCase[];
};
const x = lossRef.inputs;

const optionsOf = (c: LossCase): GRPOLossOptions => ({
  lossType: c.lossType,
  beta: c.beta,
  epsilon: c.epsilon,
  epsilonHigh: c.epsilonHigh,
  maxCompletionLength: x.maxCompletionLength,
  ...(c.numItemsInBatch === undefined ? {} : { numItemsInBatch: c.numItemsInBatch }),
  ...(c.gradientAccumulationSteps === undefined ? {} : { gradientAccumulationSteps: c.gradientAccumulationSteps }),
  ...(c.delta === undefined ? {} : { delta: c.delta }),
});
const where = (c: LossCase) =>
  `${c.lossType} β=${c.beta} ε=${c.epsilon}/${c.epsilonHigh}${c.oldIsNone ? " old=detached" : ""}` +
  `${c.refIsNone ? " no-ref" : ""}${c.numItemsInBatch ? ` items=${c.numItemsInBatch}` : ""}` +
  `${c.gradientAccumulationSteps ? ` accum=${c.gradientAccumulationSteps}` : ""}${c.delta ? ` δ=${c.delta}` : ""}`;

function expectClipRatios(
  actual: { lowMean: tf.Scalar; highMean: tf.Scalar; regionMean: tf.Scalar },
  e: ClipRatioValues,
  at: string,
) {
  expectClose(actual.lowMean, e.lowMean, `${at} clip_ratio/low_mean`);
  expectClose(actual.highMean, e.highMean, `${at} clip_ratio/high_mean`);
  expectClose(actual.regionMean, e.regionMean, `${at} clip_ratio/region_mean`);
}

cpuAgainstTorch("grpo");

describe("groupAdvantages vs TRL _generate_and_score_completions (torch float64)", () => {
  it("two weighted reward functions with a null, a zero-variance group, every scaleRewards and GDPO", () => {
    expect(adv.rewards.flat()).toContain(null);
    for (const c of adv.cases) {
      const at = `${c.multiObjectiveAggregation} scale=${c.scaleRewards}`;
      const out = groupAdvantages(adv.rewards, c.numGenerations, {
        scaleRewards: c.scaleRewards,
        rewardWeights: adv.rewardWeights,
        multiObjectiveAggregation: c.multiObjectiveAggregation!,
      });
      expectClose(out.advantages, c.advantages, `${at} advantages`);
      expectClose(out.rewards, c.rewards, `${at} rewards`);
      expectClose(out.std, c.std, `${at} std`);
      expect(out.fracRewardZeroStd, `${at} frac_reward_zero_std`).toBeCloseTo(c.fracRewardZeroStd, 12);
    }
    // The zero-variance group gets advantage 0 under group scaling, and is counted once in three.
    const group = adv.cases.find(
      (c) => c.scaleRewards === "group" && c.multiObjectiveAggregation === "sum_then_normalize",
    )!;
    expect(group.fracRewardZeroStd).toBeCloseTo(1 / 3, 12);
    expectClose(group.advantages.slice(3, 6), [0, 0, 0], "zero-variance group");
  });

  it("one reward function: groups of 2 with group/batch/none scaling, and G = 1", () => {
    for (const c of adv.single.cases) {
      const at = `single G=${c.numGenerations} scale=${c.scaleRewards}`;
      const out = groupAdvantages(adv.single.rewards, c.numGenerations, { scaleRewards: c.scaleRewards });
      expectClose(out.advantages, c.advantages, `${at} advantages`);
      expectClose(out.std, c.std, `${at} std`);
      expect(out.fracRewardZeroStd).toBeCloseTo(c.fracRewardZeroStd, 12);
    }
    // Tensors are accepted too.
    const fromTensor = tf.tidy(() => groupAdvantages(tf.tensor1d(adv.single.rewards), 2));
    expectClose(fromTensor.advantages, adv.single.cases[0]!.advantages, "tensor rewards");
  });

  it("weightedRewardSum is TRL's nansum (a null counts as absent) and rewardMetrics uses the unweighted sum", () => {
    expectClose(weightedRewardSum(adv.rewards, adv.rewardWeights), adv.weightedSum, "weighted nansum");
    const metrics = rewardMetrics(adv.rewards, ["accuracy", "format"]);
    expect(Object.keys(metrics).sort()).toEqual(Object.keys(adv.metrics).sort());
    for (const [name, value] of Object.entries(adv.metrics)) expectClose(metrics[name]!, value, name);
    expect(weightedRewardSum([[null, null]])).toEqual([0]);
  });

  it("rejects a group size that does not divide the batch and mismatched weights, naming the field", () => {
    expect(configErrorField(() => groupAdvantages([1, 2, 3], 2))).toBe("numGenerations");
    expect(configErrorField(() => groupAdvantages(adv.rewards, 3, { rewardWeights: [1] }))).toBe("rewardWeights");
    expect(configErrorField(() => groupAdvantages([1, 2], 2, { scaleRewards: "prompt" as ScaleRewards }))).toBe(
      "scaleRewards",
    );
  });
});

describe("grpoLoss vs TRL _compute_loss (torch float64)", () => {
  it("covers every loss type, β 0 and > 0, ε_high ≠ ε, a fully masked (truncated) row and padded rows", () => {
    for (const t of GRPO_LOSS_TYPES) {
      for (const beta of [0, 0.04]) {
        expect(lossRef.cases.some((c) => c.lossType === t && c.beta === beta && c.epsilonHigh !== c.epsilon)).toBe(
          true,
        );
      }
    }
    expect(x.mask.some((row) => row.every((m) => m === 0))).toBe(true);
    expect(x.mask.some((row) => row[0] === 1 && row.at(-1) === 0)).toBe(true);
    const c = lossRef.cases.find((k) => k.lossType === "grpo" && k.epsilonHigh === 0.28 && k.beta === 0)!;
    expect(c.clipRatio.lowMean).toBeGreaterThan(0);
    expect(c.clipRatio.highMean).toBeGreaterThan(0);
  });

  it("matches every case to 1e-6: loss, per-token loss, kl and clip ratios", () => {
    const before = tf.memory().numTensors;
    for (const c of lossRef.cases) {
      tf.tidy(() => {
        const out = grpoLoss(
          x.logps,
          c.oldIsNone ? null : x.oldLogps,
          c.refIsNone ? null : x.refLogps,
          x.advantages,
          x.mask,
          optionsOf(c),
        );
        expectClose(out.loss, c.loss, `${where(c)} loss`);
        expectClose(out.perTokenLoss, c.perTokenLoss, `${where(c)} perTokenLoss`);
        if (c.kl === null) expect(out.kl).toBeUndefined();
        else expectClose(out.kl!, c.kl, `${where(c)} kl`);
        expectClipRatios(out.clipRatio, c.clipRatio, where(c));
      });
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("gradients w.r.t. the log-probs match torch autograd (through the ratio and the k3 KL)", () => {
    for (const c of lossRef.cases) {
      const logps = tf.variable(tf.tensor2d(x.logps));
      const { value, grads } = tf.variableGrads(
        () =>
          grpoLoss(
            logps,
            c.oldIsNone ? null : x.oldLogps,
            c.refIsNone ? null : x.refLogps,
            x.advantages,
            x.mask,
            optionsOf(c),
          ).loss,
        [logps],
      );
      expectClose(value, c.loss, `${where(c)} grad-pass loss`);
      expectClose(grads[logps.name]!, c.grad, `${where(c)} d/dlogps`);
      tf.dispose([logps, value, ...Object.values(grads)]);
    }
  });

  it("at ratio 1 (old = detached log-probs), grpo's gradient is −A/(|y|·B) per valid token", () => {
    const logps = tf.variable(tf.tensor2d(x.logps));
    const { value, grads } = tf.variableGrads(
      () => grpoLoss(logps, null, null, x.advantages, x.mask, { lossType: "grpo" }).loss,
      [logps],
    );
    const rows = x.mask.length;
    const expected = x.mask.map((row, i) => {
      const n = Math.max(
        row.reduce((a, b) => a + b, 0),
        1,
      );
      return row.map((m) => (m * -x.advantages[i]!) / (n * rows));
    });
    expectClose(grads[logps.name]!, expected, "−A/|y|/B");
    tf.dispose([logps, value, ...Object.values(grads)]);
  });

  it("β ≠ 0 without reference log-probs is a ConfigError; defaults are TRL's (dapo, β 0, ε 0.2)", () => {
    expect(() => grpoLoss(x.logps, null, null, x.advantages, x.mask, { beta: 0.04 })).toThrow(ConfigError);
    const c = lossRef.cases.find((k) => k.refIsNone)!;
    tf.tidy(() => expectClose(grpoLoss(x.logps, x.oldLogps, null, x.advantages, x.mask).loss, c.loss, "defaults"));
    expect(() => grpoLoss(x.logps, null, null, x.advantages, x.mask, { lossType: "cispo" as GRPOLossType })).toThrow(
      /lossType/,
    );
  });
});
