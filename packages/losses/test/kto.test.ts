import { ConfigError, tf } from "@prefkit/core";
import { type KTOLossOptions, type KTOLossType, ktoKLEstimate, ktoLoss } from "@prefkit/losses";
import { describe, expect, it } from "vitest";
import { configErrorField, cpuAgainstTorch, expectClose, methodsReference } from "./helpers.js";

const { inputs, cases } = methodsReference.kto as {
  inputs: Record<string, number[]> & { labels: boolean[] };
  cases: KTOCase[];
};

interface KTOCase {
  lossType: KTOLossType;
  beta: number;
  desirableWeight: number;
  undesirableWeight: number;
  klFrom?: "logps" | "logpsNegative" | "value";
  kl: number;
  labels: boolean[];
  losses: number[];
  loss: number;
  chosenRewards: number[];
  rejectedRewards: number[];
  grads: Record<"policyLogps" | "refLogps" | "policyKlLogps" | "refKlLogps", number[]>;
}

const klInputs = (c: KTOCase) =>
  c.klFrom === "logpsNegative"
    ? [inputs.policyKlLogpsNegative!, inputs.refKlLogpsNegative!]
    : [inputs.policyKlLogps!, inputs.refKlLogps!];

function optionsOf(c: KTOCase, kl: KTOLossOptions["kl"]): KTOLossOptions {
  const { lossType, beta, desirableWeight, undesirableWeight } = c;
  return { lossType, beta, desirableWeight, undesirableWeight, kl };
}

const where = (c: KTOCase) =>
  `${c.lossType} β=${c.beta} w=${c.desirableWeight}/${c.undesirableWeight} kl=${c.klFrom ?? "-"} labels=${c.labels.map(Number).join("")}`;

cpuAgainstTorch("kto");

describe("ktoLoss vs TRL kto_loss (torch float64)", () => {
  it("covers both loss types, weights ≠ 1, the KL clamp on and off, and one-kind batches", () => {
    expect(new Set(cases.map((c) => c.lossType))).toEqual(new Set(["kto", "apo_zero_unpaired"]));
    expect(cases.some((c) => c.desirableWeight !== 1 && c.undesirableWeight !== 1)).toBe(true);
    expect(cases.some((c) => c.klFrom === "logpsNegative" && c.kl === 0)).toBe(true);
    expect(cases.some((c) => c.klFrom === "logps" && c.kl > 0)).toBe(true);
    expect(cases.some((c) => c.labels.every((l) => l))).toBe(true);
    expect(cases.some((c) => c.labels.every((l) => !l))).toBe(true);
  });

  it("matches every case to 1e-6 (desirable rows first, as TRL concatenates)", () => {
    const before = tf.memory().numTensors;
    for (const c of cases) {
      tf.tidy(() => {
        const [policyKlLogps, refKlLogps] = klInputs(c);
        const kl = c.klFrom === "value" ? c.kl : { policyKlLogps: policyKlLogps!, refKlLogps: refKlLogps! };
        const out = ktoLoss(inputs.policyLogps!, inputs.refLogps!, c.labels, optionsOf(c, kl));
        expectClose(out.losses, c.losses, `${where(c)} losses`);
        expectClose(tf.mean(out.losses), c.loss, `${where(c)} loss`);
        expectClose(out.chosenRewards, c.chosenRewards, `${where(c)} chosenRewards`);
        expectClose(out.rejectedRewards, c.rejectedRewards, `${where(c)} rejectedRewards`);
        expectClose(out.kl, c.kl, `${where(c)} kl`);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("gradients match torch autograd: none through the KL estimate or to the reference's KL log-probs", () => {
    for (const c of cases) {
      const [policyKlLogps, refKlLogps] = klInputs(c);
      const vars = [inputs.policyLogps!, inputs.refLogps!, policyKlLogps!, refKlLogps!].map((x) =>
        tf.variable(tf.tensor1d(x)),
      );
      const [pol, ref, klPol, klRef] = vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
      const { value, grads } = tf.variableGrads(() => {
        const kl = c.klFrom === "value" ? c.kl : { policyKlLogps: klPol, refKlLogps: klRef };
        return tf.mean(ktoLoss(pol, ref, c.labels, optionsOf(c, kl)).losses) as tf.Scalar;
      }, vars);
      expectClose(value, c.loss, `${where(c)} grad-pass loss`);
      expectClose(grads[pol.name]!, c.grads.policyLogps, `${where(c)} d/dpolicy`);
      expectClose(grads[ref.name]!, c.grads.refLogps, `${where(c)} d/dref`);
      // TF.js omits or zeroes a variable the loss does not depend on; torch says None (zeros here).
      for (const [v, expected] of [
        [klPol, c.grads.policyKlLogps],
        [klRef, c.grads.refKlLogps],
      ] as const) {
        expect(expected.every((g) => g === 0)).toBe(true);
        const g = grads[v.name];
        if (g !== undefined) expectClose(g, expected, `${where(c)} d/dKL`);
      }
      tf.dispose([...vars, value, ...Object.values(grads)]);
    }
  });

  it("ktoKLEstimate is mean(policy − ref) clamped at 0", () => {
    tf.tidy(() => {
      expectClose(ktoKLEstimate(inputs.policyKlLogps!, inputs.refKlLogps!), 0.3125, "kl positive");
      expectClose(ktoKLEstimate(inputs.policyKlLogpsNegative!, inputs.refKlLogpsNegative!), 0, "kl clamped");
    });
  });

  it("apo_zero_unpaired needs no KL and reports 0; kto without one is a ConfigError", () => {
    tf.tidy(() => {
      const out = ktoLoss([-1, -2], [-1.5, -1.5], [true, false], { lossType: "apo_zero_unpaired" });
      expectClose(out.kl, 0, "apo kl");
    });
    expect(configErrorField(() => ktoLoss([-1, -2], [-1.5, -1.5], [true, false]))).toBe("kl");
    expect(() => ktoLoss([-1, -2], [-1, -2], [true], { kl: 0 })).toThrow(/one label per row/);
    expect(() => ktoLoss([-1], [-1], [true], { kl: 0, desirableWeight: -1 })).toThrow(ConfigError);
    expect(() => ktoLoss([-1], [-1], [true], { kl: 0, lossType: "bco" as KTOLossType })).toThrow(/lossType/);
  });

  it("at policy = reference with z = 0 every row's loss is 1 − σ(0) = 0.5", () => {
    tf.tidy(() => {
      const logps = [-3, -4.5, -7];
      const out = ktoLoss(logps, logps, [false, true, false], { kl: { policyKlLogps: logps, refKlLogps: logps } });
      expectClose(out.losses, [0.5, 0.5, 0.5], "step 0");
    });
  });
});
