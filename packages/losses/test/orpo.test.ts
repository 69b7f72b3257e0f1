import { ConfigError, tf } from "@prefkit/core";
import { log1mexp, oddsRatioLoss, orpoObjective } from "@prefkit/losses";
import { describe, expect, it } from "vitest";
import { cpuAgainstTorch, expectClose, methodsReference } from "./helpers.js";

const { inputs, cases } = methodsReference.orpo as {
  inputs: { chosenLogps: number[]; rejectedLogps: number[]; chosenNll: number };
  cases: {
    beta: number;
    losses: number[];
    chosenRewards: number[];
    rejectedRewards: number[];
    logOddsRatio: number;
    logOddsChosen: number;
    loss: number;
    log1mexpChosen: number[];
    grads: { chosenLogps: number[]; rejectedLogps: number[]; chosenNll: number };
  }[];
};

cpuAgainstTorch("orpo");

describe("oddsRatioLoss / orpoObjective vs TRL odds_ratio_loss (torch float64)", () => {
  it("log1mexp matches on both sides of −ln 2", () => {
    expect(inputs.chosenLogps.some((x) => x < -Math.LN2)).toBe(true);
    expect(inputs.chosenLogps.some((x) => x > -Math.LN2)).toBe(true);
    tf.tidy(() => expectClose(log1mexp(tf.tensor1d(inputs.chosenLogps)), cases[0]!.log1mexpChosen, "log1mexp"));
  });

  it("matches every β to 1e-6, the terms, the rewards, the two log-odds metrics and the objective", () => {
    const before = tf.memory().numTensors;
    for (const c of cases) {
      tf.tidy(() => {
        const where = `β=${c.beta}`;
        const out = orpoObjective(inputs.chosenLogps, inputs.rejectedLogps, inputs.chosenNll, { beta: c.beta });
        expectClose(out.losses, c.losses, `${where} losses`);
        expectClose(out.chosenRewards, c.chosenRewards, `${where} chosenRewards`);
        expectClose(out.rejectedRewards, c.rejectedRewards, `${where} rejectedRewards`);
        expectClose(out.logOddsRatio, c.logOddsRatio, `${where} log_odds_ratio`);
        expectClose(out.logOddsChosen, c.logOddsChosen, `${where} log_odds_chosen`);
        expectClose(out.loss, c.loss, `${where} loss`);
        expectClose(out.nllLoss, inputs.chosenNll, `${where} nll_loss`);
        const alone = oddsRatioLoss(inputs.chosenLogps, inputs.rejectedLogps, { beta: c.beta });
        expectClose(alone.losses, c.losses, `${where} oddsRatioLoss alone`);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("gradients of the objective match torch autograd (finite on both log1mexp branches)", () => {
    for (const c of cases) {
      const pc = tf.variable(tf.tensor1d(inputs.chosenLogps));
      const pr = tf.variable(tf.tensor1d(inputs.rejectedLogps));
      const nll = tf.variable(tf.scalar(inputs.chosenNll));
      const { value, grads } = tf.variableGrads(() => orpoObjective(pc, pr, nll, { beta: c.beta }).loss);
      expectClose(value, c.loss, `β=${c.beta} grad-pass loss`);
      expectClose(grads[pc.name]!, c.grads.chosenLogps, `β=${c.beta} d/dchosen`);
      expectClose(grads[pr.name]!, c.grads.rejectedLogps, `β=${c.beta} d/drejected`);
      expectClose(grads[nll.name]!, c.grads.chosenNll, `β=${c.beta} d/dnll`);
      tf.dispose([pc, pr, nll, value, ...Object.values(grads)]);
    }
  });

  it("rejects β ≤ 0", () => {
    expect(() => oddsRatioLoss([-1], [-2], { beta: 0 })).toThrow(ConfigError);
  });
});
