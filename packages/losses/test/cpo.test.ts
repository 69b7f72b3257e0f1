import { tf } from "@prefkit/core";
import { CPO_LOSS_TYPES, type CPOLossType, type CPOObjectiveOptions, cpoLoss, cpoObjective } from "@prefkit/losses";
import { describe, expect, it } from "vitest";
import { configErrorField, cpuAgainstTorch, expectClose, methodsReference } from "./helpers.js";

interface CPOCase extends Required<CPOObjectiveOptions> {
  means: boolean;
  losses: number[];
  chosenRewards: number[];
  rejectedRewards: number[];
  loss: number;
  nllLoss: number;
  grads: { chosenLogps: number[]; rejectedLogps: number[]; chosenNll: number };
}

const { inputs, cases } = methodsReference.cpo as { inputs: Record<string, number[]>; cases: CPOCase[] };
const chosenNll = methodsReference.cpo.inputs.chosenNll as number;

const logpsOf = (c: CPOCase) =>
  c.means ? [inputs.chosenMeans!, inputs.rejectedMeans!] : [inputs.chosenLogps!, inputs.rejectedLogps!];
const where = (c: CPOCase) =>
  `${c.lossType} β=${c.beta} ε=${c.labelSmoothing} γ=${c.simpoGamma} α=${c.alpha} cpoAlpha=${c.cpoAlpha}`;
const optionsOf = ({ lossType, beta, labelSmoothing, simpoGamma, alpha, cpoAlpha }: CPOCase): CPOObjectiveOptions => ({
  lossType,
  beta,
  labelSmoothing,
  simpoGamma,
  alpha,
  cpoAlpha,
});

cpuAgainstTorch("cpo");

describe("cpoLoss / cpoObjective vs TRL cpo_loss (torch float64)", () => {
  it("covers every loss type with and without label smoothing, SimPO γ, AlphaPO α ≠ 0 and cpoAlpha 0", () => {
    for (const t of CPO_LOSS_TYPES) {
      expect(cases.some((c) => c.lossType === t && c.labelSmoothing > 0)).toBe(true);
      expect(cases.some((c) => c.lossType === t && c.alpha !== 0)).toBe(true);
    }
    expect(new Set(cases.filter((c) => c.lossType === "simpo").map((c) => c.simpoGamma)).size).toBeGreaterThan(2);
    expect(cases.some((c) => c.cpoAlpha === 0)).toBe(true);
  });

  it("matches every case to 1e-6", () => {
    const before = tf.memory().numTensors;
    for (const c of cases) {
      tf.tidy(() => {
        const [pc, pr] = logpsOf(c);
        const out = cpoObjective(pc!, pr!, c.cpoAlpha === 0 ? undefined : chosenNll, optionsOf(c));
        expectClose(out.losses, c.losses, `${where(c)} losses`);
        expectClose(out.chosenRewards, c.chosenRewards, `${where(c)} chosenRewards`);
        expectClose(out.rejectedRewards, c.rejectedRewards, `${where(c)} rejectedRewards`);
        expectClose(out.loss, c.loss, `${where(c)} loss`);
        expectClose(out.nllLoss, c.nllLoss, `${where(c)} nll_loss`);
        expectClose(cpoLoss(pc!, pr!, optionsOf(c)).losses, c.losses, `${where(c)} cpoLoss alone`);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("gradients match torch autograd", () => {
    for (const c of cases) {
      const [chosen, rejected] = logpsOf(c);
      const pc = tf.variable(tf.tensor1d(chosen!));
      const pr = tf.variable(tf.tensor1d(rejected!));
      const nll = tf.variable(tf.scalar(chosenNll));
      const { value, grads } = tf.variableGrads(
        () => cpoObjective(pc, pr, nll, optionsOf(c)).loss,
        c.cpoAlpha === 0 ? [pc, pr] : [pc, pr, nll],
      );
      expectClose(value, c.loss, `${where(c)} grad-pass loss`);
      expectClose(grads[pc.name]!, c.grads.chosenLogps, `${where(c)} d/dchosen`);
      expectClose(grads[pr.name]!, c.grads.rejectedLogps, `${where(c)} d/drejected`);
      if (c.cpoAlpha !== 0) expectClose(grads[nll.name]!, c.grads.chosenNll, `${where(c)} d/dnll`);
      tf.dispose([pc, pr, nll, value, ...Object.values(grads)]);
    }
  });

  it("defaults are TRL's (sigmoid, β 0.1, ε 0, cpoAlpha 1) and bad options are ConfigErrors naming the field", () => {
    const c = cases.find((x) => x.lossType === "sigmoid" && x.labelSmoothing === 0 && x.alpha === 0)!;
    tf.tidy(() => {
      expectClose(cpoObjective(inputs.chosenLogps!, inputs.rejectedLogps!, chosenNll).loss, c.loss, "defaults");
    });
    expect(configErrorField(() => cpoLoss([-1], [-2], { lossType: "kto" as CPOLossType }))).toBe("lossType");
    expect(configErrorField(() => cpoLoss([-1], [-2], { labelSmoothing: 0.5 }))).toBe("labelSmoothing");
    expect(configErrorField(() => cpoObjective([-1], [-2], undefined))).toBe("chosenNll");
  });
});
