import { ConfigError, tf } from "@prefkit/core";
import {
  AdaptiveKLController,
  defaultPPOConfig,
  FixedKLController,
  gae,
  klControllerFromState,
  klPenalty,
  maskedVar,
  ppoPolicyLoss,
  ppoValueLoss,
  validatePPOConfig,
  whiten,
} from "@prefkit/losses";
import { describe, expect, it } from "vitest";
import { cpuAgainstTorch, expectClose, reference } from "./helpers.js";

cpuAgainstTorch("ppo");

describe("PPO pieces vs TRL (torch float64)", () => {
  it("klPenalty k1 and k3", () => {
    const { logprobs, refLogprobs, k1, k3 } = reference.kl;
    tf.tidy(() => {
      expectClose(klPenalty(logprobs, refLogprobs, "k1"), k1, "k1");
      expectClose(klPenalty(logprobs, refLogprobs, "k3"), k3, "k3");
      expectClose(klPenalty(logprobs, refLogprobs), k1, "default k1");
    });
  });

  it("gae with γ=1, λ=0.95 on a masked batch", () => {
    const g = reference.gae;
    tf.tidy(() => {
      const out = gae(g.rewards, g.values, g.mask, { gamma: g.gamma, lam: g.lam });
      expect(out.advantages.shape).toEqual([2, 6]);
      expectClose(out.advantages, g.advantages, "advantages");
      expectClose(out.returns, g.returns, "returns");
      // Past each row's end everything is 0.
      expect(out.advantages.arraySync()[1]!.slice(3)).toEqual([0, 0, 0]);
    });
  });

  it("whiten = TRL masked_whiten with the unbiased masked variance", () => {
    const w = reference.whiten;
    tf.tidy(() => {
      expectClose(maskedVar(w.values, w.mask), w.maskedVar, "maskedVar");
      expectClose(whiten(w.values, w.mask), w.masked, "whiten masked");
      expectClose(whiten(w.values, w.mask, false), w.maskedNoShift, "whiten shiftMean=false");
      expectClose(whiten(w.values), w.unmasked, "whiten unmasked");
    });
  });

  it("policy loss with ratios inside and outside the clip range, and its gradient", () => {
    const p = reference.policy;
    const newLp = tf.variable(tf.tensor2d(p.newLogprobs));
    // variableGrads disposes everything but the loss, so the metrics come from a second call.
    const { value, grads } = tf.variableGrads(
      () => ppoPolicyLoss(newLp, p.oldLogprobs, p.advantages, p.mask, p.cliprange).loss,
    );
    const stats = ppoPolicyLoss(newLp, p.oldLogprobs, p.advantages, p.mask, p.cliprange);
    expect(p.clipfrac).toBeGreaterThan(0);
    expect(p.clipfrac).toBeLessThan(1);
    expectClose(value, p.loss, "pg loss");
    expectClose(stats.clipfrac, p.clipfrac, "pg clipfrac");
    expectClose(stats.approxkl, p.approxkl, "approxkl");
    expectClose(stats.ratioMean, p.ratioMean, "ratio mean");
    expectClose(stats.ratioMin, p.ratioMin, "ratio min");
    expectClose(stats.ratioMax, p.ratioMax, "ratio max");
    expectClose(grads[newLp.name]!, p.grad, "pg grad");
    tf.dispose([newLp, value, ...Object.values(grads), ...Object.values(stats)]);
  });

  it("value loss with clipping, and its gradient", () => {
    const v = reference.value;
    const newV = tf.variable(tf.tensor2d(v.newValues));
    const { value, grads } = tf.variableGrads(
      () => ppoValueLoss(newV, v.oldValues, v.returns, v.mask, v.cliprangeValue).loss,
    );
    const { clipfrac, loss } = ppoValueLoss(newV, v.oldValues, v.returns, v.mask, v.cliprangeValue);
    expectClose(value, v.loss, "vf loss");
    expectClose(clipfrac, v.clipfrac, "vf clipfrac");
    expectClose(grads[newV.name]!, v.grad, "vf grad");
    tf.dispose([newV, value, clipfrac, loss, ...Object.values(grads)]);
  });
});

describe("KL controllers", () => {
  it("adaptive follows TRL / Ziegler et al. and round-trips its state", () => {
    const ctl = new AdaptiveKLController();
    expect(ctl.value).toBe(0.2);
    for (const step of reference.adaptiveKl as { currentKl: number; nSteps: number; value: number }[]) {
      ctl.update(step.currentKl, step.nSteps);
      expect(Math.abs(ctl.value - step.value)).toBeLessThan(1e-15);
    }
    const state = JSON.parse(JSON.stringify(ctl.state()));
    expect(state).toEqual({ kind: "adaptive", value: ctl.value, target: 6, horizon: 10000 });
    const restored = klControllerFromState(state);
    restored.update(7, 100);
    ctl.update(7, 100);
    expect(restored.value).toBe(ctl.value);
  });

  it("fixed never changes", () => {
    const ctl = new FixedKLController(0.05);
    ctl.update(100, 1000);
    expect(ctl.value).toBe(0.05);
    expect(klControllerFromState(ctl.state()).state()).toEqual({ kind: "fixed", value: 0.05 });
  });
});

describe("PPOConfig", () => {
  it("has TRL's defaults", () => {
    const c = defaultPPOConfig();
    expect(c).toMatchObject({
      klCoef: 0.05,
      cliprange: 0.2,
      cliprangeValue: 0.2,
      vfCoef: 0.1,
      gamma: 1,
      lam: 0.95,
      temperature: 0.7,
      responseLength: 53,
      numPpoEpochs: 4,
      numMiniBatches: 1,
      learningRate: 3e-6,
      klEstimator: "k1",
      missingEosPenalty: null,
      stopTokenId: null,
      whitenRewards: false,
      initKlCoef: 0.2,
      target: 6,
      horizon: 10000,
    });
    expect(() => validatePPOConfig(c)).not.toThrow();
  });

  it("rejects bad fields with ConfigError", () => {
    const err = (() => {
      try {
        validatePPOConfig({ ...defaultPPOConfig(), klEstimator: "k2" as "k1" });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.field).toBe("klEstimator");
    expect(err!.message).toMatch(/"k1", "k3"/);
    expect(() => validatePPOConfig({ ...defaultPPOConfig(), lam: 2 })).toThrow(/lam/);
  });
});
